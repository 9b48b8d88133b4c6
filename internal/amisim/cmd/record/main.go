// Command record records what a real Asterisk answers and logs when
// pbxsync's built-in rules reload its modules, into the transcript the AMI
// simulator replays (internal/amisim/testdata/asterisk-transcript.json).
//
// It edits the Asterisk configuration, so run it only against a test
// Asterisk on this host, never a production one:
//
//	go run ./internal/amisim/cmd/record -secret-file /root/ami.secret \
//	    -out internal/amisim/testdata/asterisk-transcript.json
//
// For every reload entry of rules.Builtins() it records, with the module
// loaded: the stock file (good), the file with an unclosed category
// appended (broken), the file with a line without '=' appended
// (no_equals); then, for a module it can unload, the module unloaded
// (not_loaded), and loads it again. Modules absent from the build are
// recorded as not_loaded only. Every file is restored byte-exact and its
// module reloaded after each scenario. When AMI is lost (a broken
// manager.conf), the restore runs through "asterisk -rx".
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"

	"pbxsync/asteriskctl"
	"pbxsync/internal/amisim"
	"pbxsync/rules"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "record:", err)
		os.Exit(1)
	}
}

type recorder struct {
	s       *asteriskctl.Session
	confDir string
	logFile string
	cli     string // the asterisk binary, for the restore fallback
	settle  time.Duration
}

func run() error {
	addr := flag.String("ami", "127.0.0.1:5038", "AMI address of the test Asterisk (loopback only)")
	user := flag.String("user", "pbxsync", "AMI user")
	secretFile := flag.String("secret-file", "", "file holding the AMI secret")
	confDir := flag.String("config-dir", "/etc/asterisk", "Asterisk configuration directory")
	logFile := flag.String("log", "", "Asterisk log file (default: ask Asterisk)")
	out := flag.String("out", "internal/amisim/testdata/asterisk-transcript.json", "transcript to write")
	only := flag.String("only", "", "record only the entries whose pattern contains this text")
	cli := flag.String("asterisk", "asterisk", "asterisk binary for the restore fallback (asterisk -rx)")
	flag.Parse()
	if !strings.HasPrefix(*addr, "127.") && !strings.HasPrefix(*addr, "localhost:") && !strings.HasPrefix(*addr, "[::1]:") {
		return fmt.Errorf("-ami %s: record edits the configuration of the Asterisk it talks to; loopback only", *addr)
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	s, err := asteriskctl.New(asteriskctl.Config{Addr: *addr, Username: *user, SecretFile: *secretFile, Logger: log, MaxBackoff: time.Second})
	if err != nil {
		return err
	}
	ctx := context.Background()
	if err := s.WaitConnected(ctxFor(ctx, 10*time.Second)); err != nil {
		return err
	}
	r := &recorder{s: s, confDir: *confDir, logFile: *logFile, cli: *cli, settle: 400 * time.Millisecond}
	if r.logFile == "" {
		loc, err := asteriskctl.FindLog(ctx, s, func(p string) bool { _, err := os.Stat(p); return err == nil })
		if err != nil {
			return err
		}
		r.logFile = loc.Path
	}
	version, err := s.Command(ctx, "core show version")
	if err != nil {
		return err
	}
	set, err := s.CoreSettings(ctx)
	if err != nil {
		return err
	}
	t := amisim.Transcript{
		Asterisk:  strings.TrimSpace(strings.Join(version, " ")),
		Version:   set.AsteriskVersion,
		AMI:       set.AMIVersion,
		Recorded:  time.Now().UTC().Format(time.RFC3339),
		Tool:      "go run ./internal/amisim/cmd/record (see its doc comment)",
		ConfigDir: r.confDir,
		LogFile:   r.logFile,
		Notes: []string{
			"Stock configuration from 'make samples'; logger.conf as shipped (messages.log => notice,warning,error).",
			"Log lines are what the log got during the scenario; {time}, {file} and {line} are placeholders.",
		},
	}
	for _, b := range rules.Builtins() {
		if b.Action.Kind != rules.Reload {
			continue
		}
		if *only != "" && !strings.Contains(b.Pattern, *only) {
			continue
		}
		for _, e := range entriesOf(b) {
			fmt.Fprintf(os.Stderr, "record %s -> %s\n", e.File, e.Module)
			if err := r.record(ctx, &e); err != nil {
				return fmt.Errorf("%s: %w", e.File, err)
			}
			t.Entries = append(t.Entries, e)
		}
	}
	b, err := json.MarshalIndent(t, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(*out, append(b, '\n'), 0o644)
}

// entriesOf turns a built-in rule into the files to record: the file
// itself, the main file for a pattern like "pjsip*.conf", an included
// file for "queues_*.conf", the back ends for "cdr_*.conf".
func entriesOf(b rules.Builtin) []amisim.Entry {
	p, m := b.Pattern, b.Action.Module
	if !strings.Contains(p, "*") {
		return []amisim.Entry{{Pattern: p, File: p, Module: m}}
	}
	if strings.Contains(m, "*") { // cdr_*.conf → cdr_*.so
		var backends []string
		switch {
		case strings.HasPrefix(p, "cdr_"):
			backends = []string{"custom", "manager", "sqlite3_custom"}
		case strings.HasPrefix(p, "cel_"):
			backends = []string{"custom", "sqlite3_custom"}
		}
		var out []amisim.Entry
		for _, be := range backends {
			out = append(out, amisim.Entry{Pattern: p, File: strings.Replace(p, "*", be, 1), Module: strings.Replace(m, "*", be, 1)})
		}
		return out
	}
	base, ext, _ := strings.Cut(p, "*")
	if strings.HasSuffix(base, "_") { // queues_*.conf: a file included from queues.conf
		main := strings.TrimSuffix(base, "_") + ext
		return []amisim.Entry{{Pattern: p, File: base + "pbxsync" + ext, IncludeIn: main, Module: m}}
	}
	return []amisim.Entry{{Pattern: p, File: base + ext, Module: m}} // pjsip*.conf: pjsip.conf
}

func ctxFor(ctx context.Context, d time.Duration) context.Context {
	c, cancel := context.WithTimeout(ctx, d)
	time.AfterFunc(d, cancel) // released when it expires: the recorder is short-lived
	return c
}

// record fills e.Scenarios.
func (r *recorder) record(ctx context.Context, e *amisim.Entry) error {
	loaded, err := r.s.ModuleCheck(ctx, e.Module)
	if err != nil {
		return err
	}
	e.Loaded = loaded
	if !loaded {
		sc, err := r.scenario(ctx, e, amisim.ScenarioNotLoaded, "", 0)
		if err != nil {
			return err
		}
		sc.Note = "the module did not run in the recorded Asterisk (not built or not loaded)"
		e.Scenarios = append(e.Scenarios, sc)
		return nil
	}
	path := filepath.Join(r.confDir, e.File)
	orig, origErr := os.ReadFile(path)
	if e.IncludeIn != "" {
		// The included file exists only for the recording, pulled in at
		// the end of its main file.
		main := filepath.Join(r.confDir, e.IncludeIn)
		mainOrig, err := os.ReadFile(main)
		if err != nil {
			return err
		}
		defer r.restore(ctx, e.Module, main, mainOrig, nil)
		if err := os.WriteFile(main, append(append([]byte(nil), mainOrig...), fmt.Sprintf("\n#tryinclude %s\n", e.File)...), 0o644); err != nil {
			return err
		}
		orig, origErr = []byte("; included by pbxsync's recorder\n"), nil
		if err := os.WriteFile(path, orig, 0o644); err != nil {
			return err
		}
		defer os.Remove(path)
	}
	if origErr != nil && !errors.Is(origErr, os.ErrNotExist) {
		return origErr
	}
	if origErr != nil {
		// No sample: start from an empty file.
		orig = nil
		if err := os.WriteFile(path, nil, 0o644); err != nil {
			return err
		}
		defer os.Remove(path)
	}
	good, err := r.scenario(ctx, e, amisim.ScenarioGood, path, 0)
	if err != nil {
		return err
	}
	e.Scenarios = append(e.Scenarios, good)
	for _, v := range []struct{ name, line string }{{amisim.ScenarioBroken, amisim.BrokenLine}, {amisim.ScenarioNoEquals, amisim.NoEqualsLine}} {
		body := append([]byte(nil), orig...)
		if len(body) > 0 && body[len(body)-1] != '\n' {
			body = append(body, '\n')
		}
		line := 1 + strings.Count(string(body), "\n")
		body = append(body, v.line+"\n"...)
		if err := os.WriteFile(path, body, 0o644); err != nil {
			return err
		}
		sc, err := r.scenario(ctx, e, v.name, path, line)
		r.restore(ctx, e.Module, path, orig, origErr)
		if err != nil {
			return err
		}
		e.Scenarios = append(e.Scenarios, sc)
	}
	if strings.HasSuffix(e.Module, ".so") {
		sc, err := r.notLoaded(ctx, e)
		if err != nil {
			return err
		}
		e.Scenarios = append(e.Scenarios, sc)
	}
	return nil
}

// notLoaded unloads the module, records, and loads it again.
func (r *recorder) notLoaded(ctx context.Context, e *amisim.Entry) (amisim.Scenario, error) {
	// AMI's Command refuses "module unload" and "module load"
	// (manager.c command_blacklist): use the CLI.
	out, _ := exec.CommandContext(ctx, r.cli, "-rx", "module unload "+e.Module).CombinedOutput()
	still, err := r.s.ModuleCheck(ctx, e.Module)
	if err != nil {
		return amisim.Scenario{}, err
	}
	if still {
		return amisim.Scenario{Name: amisim.ScenarioNotLoaded, Log: []string{}, Note: "could not unload: " + strings.TrimSpace(string(out))}, nil
	}
	sc, err := r.scenario(ctx, e, amisim.ScenarioNotLoaded, "", 0)
	if out2, err2 := exec.CommandContext(ctx, r.cli, "-rx", "module load "+e.Module).CombinedOutput(); err2 != nil {
		return sc, fmt.Errorf("load %s again: %w (%s)", e.Module, err2, out2)
	}
	if ok, _ := r.s.ModuleCheck(ctx, e.Module); !ok {
		return sc, fmt.Errorf("%s did not load again", e.Module)
	}
	return sc, err
}

// restore writes the original file back (removes it when it did not
// exist) and reloads the module, through the CLI when AMI is gone.
func (r *recorder) restore(ctx context.Context, module, path string, orig []byte, origErr error) {
	if errors.Is(origErr, os.ErrNotExist) {
		_ = os.WriteFile(path, nil, 0o644)
	} else if err := os.WriteFile(path, orig, 0o644); err != nil {
		fmt.Fprintln(os.Stderr, "restore", path, err)
	}
	if err := r.s.Reload(ctxFor(ctx, 5*time.Second), module); err != nil {
		fmt.Fprintf(os.Stderr, "reload %s after restore over AMI: %v; trying asterisk -rx\n", module, err)
		out, err := exec.CommandContext(ctx, r.cli, "-rx", "module reload "+module).CombinedOutput()
		fmt.Fprintf(os.Stderr, "asterisk -rx: %s %v\n", out, err)
		_ = r.s.WaitConnected(ctxFor(ctx, 10*time.Second))
	}
}

var stamp = regexp.MustCompile(`^\[[^\]]*\]`)

// scenario reloads the module and asks ModuleCheck, and records the
// answers and what the log got meanwhile.
func (r *recorder) scenario(ctx context.Context, e *amisim.Entry, name, path string, line int) (amisim.Scenario, error) {
	off := size(r.logFile)
	sc := amisim.Scenario{Name: name, Line: line}
	for _, a := range []asteriskctl.Field{{Key: "Action", Value: "Reload"}, {Key: "Action", Value: "ModuleCheck"}} {
		resp, err := r.s.Do(ctxFor(ctx, 30*time.Second), a.Value, asteriskctl.Field{Key: "Module", Value: e.Module})
		var ae *asteriskctl.ActionError
		if err != nil && !errors.As(err, &ae) {
			return sc, fmt.Errorf("%s %s: %w", a.Value, e.Module, err)
		}
		x := amisim.Exchange{Action: []string{"Action: " + a.Value, "Module: " + e.Module}}
		for _, f := range resp.Fields {
			if !strings.EqualFold(f.Key, "ActionID") {
				x.Response = append(x.Response, f.Key+": "+f.Value)
			}
		}
		sc.Exchanges = append(sc.Exchanges, x)
	}
	sc.Log = r.logSince(off, path, line)
	return sc, nil
}

func size(p string) int64 {
	fi, err := os.Stat(p)
	if err != nil {
		return 0
	}
	return fi.Size()
}

// logSince waits until the log is quiet for r.settle, then returns the
// lines written after off, templated.
func (r *recorder) logSince(off int64, path string, line int) []string {
	last, quietSince := size(r.logFile), time.Now()
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); {
		time.Sleep(50 * time.Millisecond)
		if n := size(r.logFile); n != last {
			last, quietSince = n, time.Now()
		} else if time.Since(quietSince) >= r.settle {
			break
		}
	}
	f, err := os.Open(r.logFile)
	if err != nil {
		return []string{}
	}
	defer f.Close()
	if _, err := f.Seek(off, io.SeekStart); err != nil {
		return []string{}
	}
	out := []string{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		l := stamp.ReplaceAllString(sc.Text(), "[{time}]")
		if path != "" {
			l = strings.ReplaceAll(l, path, "{file}")
		}
		if line > 0 {
			l = strings.ReplaceAll(l, "line "+strconv.Itoa(line)+" ", "line {line} ")
			l = strings.ReplaceAll(l, "line "+strconv.Itoa(line)+",", "line {line},")
			l = strings.ReplaceAll(l, "line "+strconv.Itoa(line)+")", "line {line})")
			if strings.HasSuffix(l, "line "+strconv.Itoa(line)) {
				l = strings.TrimSuffix(l, strconv.Itoa(line)) + "{line}"
			}
		}
		out = append(out, l)
	}
	return out
}
