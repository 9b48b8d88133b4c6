package amisim

import (
	"bytes"
	_ "embed"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// A Transcript is what a real Asterisk answered and logged when pbxsync's
// built-in rules reloaded its modules, recorded by
// internal/amisim/cmd/record. A [Server] with Config.Transcript replays it:
// the Reload and ModuleCheck answers and the log lines of the recorded
// Asterisk instead of the simulator's own guesses.
type Transcript struct {
	// Asterisk is the first line of "core show version" of the recorded
	// Asterisk, e.g. "Asterisk GIT-master-f0c1c1a7b7 built by root @ … on a x86_64 running Linux …".
	Asterisk string `json:"asterisk"`
	Version  string `json:"version"`  // CoreSettings AsteriskVersion
	AMI      string `json:"ami"`      // CoreSettings AMIversion, e.g. "13.0.0"
	Recorded string `json:"recorded"` // RFC 3339 time of the recording
	Tool     string `json:"tool"`     // how to record it again
	// ConfigDir and LogFile are where the recorded Asterisk read its
	// configuration and wrote its log; {file} in log lines stands for the
	// file the scenario changed.
	ConfigDir string   `json:"config_dir"`
	LogFile   string   `json:"log_file"`
	Notes     []string `json:"notes,omitempty"`
	Entries   []Entry  `json:"entries"`
}

// Entry is one entry of the built-in rule map as recorded: the file
// changed, the module reloaded, and what happened in each scenario.
type Entry struct {
	Pattern   string     `json:"pattern"` // the built-in rule's pattern, e.g. "queues_*.conf"
	File      string     `json:"file"`    // the file changed, e.g. "queues_pbxsync.conf"
	IncludeIn string     `json:"include_in,omitempty"`
	Module    string     `json:"module"` // the module reloaded, e.g. "app_queue.so"
	Loaded    bool       `json:"loaded"` // whether the module ran when the recording began
	Scenarios []Scenario `json:"scenarios"`
}

// Scenario names.
const (
	ScenarioGood      = "good"       // the stock file (or a minimal one): expect Success and no error in the log
	ScenarioBroken    = "broken"     // an unclosed category appended: "[pbxsync-broken"
	ScenarioNoEquals  = "no_equals"  // a line without '=' appended: "pbxsync-no-equals"
	ScenarioNotLoaded = "not_loaded" // the module unloaded (or absent from the build)
)

// BrokenLine and NoEqualsLine are the lines the broken and no_equals
// scenarios append to the file. A Server replaying a Transcript treats any
// unclosed category in a .conf file as the broken scenario and any line
// without '=' as no_equals (see problemOf); in other files only these
// lines.
const (
	BrokenLine   = "[pbxsync-broken"
	NoEqualsLine = "pbxsync-no-equals"
)

// Scenario is what Asterisk answered and logged in one situation.
type Scenario struct {
	Name string `json:"name"`
	// Line is the line of File the scenario's line was appended at;
	// {line} in Log stands for it.
	Line      int        `json:"line,omitempty"`
	Exchanges []Exchange `json:"exchanges"`
	// Log holds the lines Asterisk wrote to LogFile during the scenario,
	// with "{time}" for the timestamp, "{file}" for the changed file's
	// path and "{line}" for Line.
	Log []string `json:"log"`
	// Note says what could not be recorded, e.g. why a module could not
	// be unloaded.
	Note string `json:"note,omitempty"`
}

// Exchange is one AMI action and Asterisk's answer, each a list of
// "Key: Value" lines as on the wire, ActionID left out.
type Exchange struct {
	Action   []string `json:"action"`
	Response []string `json:"response"`
}

// Headers turns "Key: Value" lines into headers.
func Headers(lines []string) []Header {
	out := make([]Header, 0, len(lines))
	for _, l := range lines {
		k, v, _ := strings.Cut(l, ":")
		out = append(out, H(strings.TrimSpace(k), strings.TrimSpace(v)))
	}
	return out
}

// Lines turns headers into "Key: Value" lines.
func Lines(hs []Header) []string {
	out := make([]string, 0, len(hs))
	for _, h := range hs {
		out = append(out, h.Key+": "+h.Value)
	}
	return out
}

// Get returns the first value of key in hs (case-insensitive).
func Get(hs []Header, key string) string { return message(hs).get(key) }

//go:embed testdata/asterisk-transcript.json
var recordedJSON []byte

// Recorded returns the transcript recorded from a real Asterisk that ships
// with the simulator (testdata/asterisk-transcript.json).
func Recorded() (*Transcript, error) {
	return ParseTranscript(recordedJSON)
}

// LoadTranscript reads a transcript file.
func LoadTranscript(path string) (*Transcript, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("transcript: %w", err)
	}
	t, err := ParseTranscript(b)
	if err != nil {
		return nil, fmt.Errorf("transcript %s: %w", path, err)
	}
	return t, nil
}

// ParseTranscript decodes a transcript.
func ParseTranscript(b []byte) (*Transcript, error) {
	var t Transcript
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&t); err != nil {
		return nil, fmt.Errorf("transcript: %w", err)
	}
	if t.Asterisk == "" || len(t.Entries) == 0 {
		return nil, fmt.Errorf("transcript: no Asterisk version or no entries")
	}
	return &t, nil
}

// Scenario returns the entry's scenario named name.
func (e *Entry) Scenario(name string) (*Scenario, bool) {
	for i := range e.Scenarios {
		if e.Scenarios[i].Name == name {
			return &e.Scenarios[i], true
		}
	}
	return nil, false
}

// Answer returns the scenario's answer to the first action named action.
func (s *Scenario) Answer(action string) ([]Header, bool) {
	for _, x := range s.Exchanges {
		if strings.EqualFold(Get(Headers(x.Action), "Action"), action) {
			return Headers(x.Response), true
		}
	}
	return nil, false
}

// modKey is how module names compare: lower case without ".so".
func modKey(m string) string { return strings.TrimSuffix(strings.ToLower(m), ".so") }

// entriesFor returns the entries of module.
func (t *Transcript) entriesFor(module string) []*Entry {
	var out []*Entry
	for i := range t.Entries {
		if modKey(t.Entries[i].Module) == modKey(module) {
			out = append(out, &t.Entries[i])
		}
	}
	return out
}

// Modules returns the modules of the transcript's entries that ran when it
// was recorded: the modules a replaying Server loads by default.
func (t *Transcript) Modules() []string {
	seen := map[string]bool{}
	var out []string
	for _, e := range t.Entries {
		if e.Loaded && !seen[modKey(e.Module)] {
			seen[modKey(e.Module)] = true
			out = append(out, e.Module)
		}
	}
	return out
}

// replayReload answers a Reload of module from the transcript: the
// response headers and the log lines to write. ok is false when the
// transcript has no entry for module.
func (s *Server) replayReload(module string, loaded bool) (resp []Header, ok bool) {
	t := s.cfg.Transcript
	entries := t.entriesFor(module)
	if len(entries) == 0 {
		return nil, false
	}
	if !loaded {
		for _, e := range entries {
			if sc, found := e.Scenario(ScenarioNotLoaded); found {
				if r, found := sc.Answer("Reload"); found {
					s.replayLog(sc, "", 0)
					return r, true
				}
			}
		}
		return []Header{H("Response", "Error"), H("Message", "No such module")}, true
	}
	// Which scenario do the module's files in ConfigDir show?
	for _, e := range entries {
		for _, p := range s.filesOf(e) {
			name, line := problemOf(p)
			if name == "" {
				continue
			}
			sc, found := e.Scenario(name)
			if !found {
				continue
			}
			if r, found := sc.Answer("Reload"); found {
				s.replayLog(sc, p, line)
				return r, true
			}
		}
	}
	for _, e := range entries {
		if sc, found := e.Scenario(ScenarioGood); found {
			if r, found := sc.Answer("Reload"); found {
				s.replayLog(sc, "", 0)
				return r, true
			}
		}
	}
	return []Header{H("Response", "Success"), H("Message", "Module Reloaded")}, true
}

// replayModuleCheck answers ModuleCheck from the transcript when it has
// the module.
func (s *Server) replayModuleCheck(module string, loaded bool) ([]Header, bool) {
	entries := s.cfg.Transcript.entriesFor(module)
	if len(entries) == 0 {
		return nil, false
	}
	want := ScenarioGood
	if !loaded {
		want = ScenarioNotLoaded
	}
	for _, e := range entries {
		if sc, found := e.Scenario(want); found {
			if r, found := sc.Answer("ModuleCheck"); found {
				return r, true
			}
		}
	}
	return nil, false
}

// filesOf returns the files in ConfigDir an entry's module reads: the
// files matching its pattern.
func (s *Server) filesOf(e *Entry) []string {
	if s.cfg.ConfigDir == "" {
		return nil
	}
	var out []string
	_ = filepath.WalkDir(s.cfg.ConfigDir, func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return nil
		}
		if ok, _ := filepath.Match(e.Pattern, d.Name()); ok {
			out = append(out, p)
		}
		return nil
	})
	return out
}

// problemOf finds the first line of file p that Asterisk's config.c
// rejects, as the recorded scenario it matches: ScenarioBroken for a
// category that is not closed ("[sales"), ScenarioNoEquals for a line that
// is neither a comment, a category, a directive nor "key = value" (or
// "key => value"). Files not ending in ".conf" (AEL, Lua) match only the
// recorder's own lines, BrokenLine and NoEqualsLine.
func problemOf(p string) (scenario string, line int) {
	b, err := os.ReadFile(p)
	if err != nil {
		return "", 0
	}
	conf := strings.HasSuffix(p, ".conf")
	inBlock := false // inside ;-- … --;
	for i, l := range strings.Split(string(b), "\n") {
		t := strings.TrimSpace(l)
		if !conf {
			switch t {
			case BrokenLine:
				return ScenarioBroken, i + 1
			case NoEqualsLine:
				return ScenarioNoEquals, i + 1
			}
			continue
		}
		if inBlock {
			if j := strings.Index(t, "--;"); j >= 0 {
				inBlock, t = false, strings.TrimSpace(t[j+3:])
			} else {
				continue
			}
		}
		if j := strings.Index(t, ";--"); j >= 0 {
			inBlock, t = !strings.Contains(t[j+3:], "--;"), strings.TrimSpace(t[:j])
		}
		if j := strings.IndexByte(t, ';'); j >= 0 && (j == 0 || t[j-1] != '\\') {
			t = strings.TrimSpace(t[:j])
		}
		switch {
		case t == "", strings.HasPrefix(t, "#"):
		case strings.HasPrefix(t, "["):
			if !strings.Contains(t, "]") {
				return ScenarioBroken, i + 1
			}
		case !strings.Contains(t, "="):
			return ScenarioNoEquals, i + 1
		}
	}
	return "", 0
}

// replayLog writes a scenario's log lines, with the placeholders filled.
func (s *Server) replayLog(sc *Scenario, file string, line int) {
	now := time.Now().Format(time.Stamp)
	for _, l := range sc.Log {
		l = strings.ReplaceAll(l, "{time}", now)
		l = strings.ReplaceAll(l, "{file}", file)
		l = strings.ReplaceAll(l, "{line}", strconv.Itoa(line))
		s.writeLog(l + "\n")
	}
}
