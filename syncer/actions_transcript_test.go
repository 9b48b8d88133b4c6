package syncer

// Replays of what a real Asterisk answered and logged (the transcript
// recorded by internal/amisim/cmd/record) against AsteriskActions with a
// real asteriskctl.Session: one subtest per entry of the built-in rule map
// and scenario.

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"pbxsync/asteriskctl"
	"pbxsync/internal/amisim"
	"pbxsync/internal/config"
	"pbxsync/rules"
)

// cannotReport are the entries whose broken file the recorded Asterisk
// neither refuses nor logs as an error pbxsync can see: a broken
// logger.conf silences the log itself, and the CDR/CEL back ends that
// declined to load with the stock files ("Module not initialized") do not
// read their file at all. docs/asterisk.md lists them.
var cannotReport = []string{"logger.conf", "cdr_custom.conf", "cdr_sqlite3_custom.conf", "cel_custom.conf", "cel_sqlite3_custom.conf"}

// transcriptRig is one simulated Asterisk replaying the recorded
// transcript, its configuration directory the job root.
type transcriptRig struct {
	t     *testing.T
	tr    *amisim.Transcript
	sim   *amisim.Server
	job   *config.Job
	x     *AsteriskActions
	logTo string
	gen   uint64
}

func newTranscriptRig(t *testing.T) *transcriptRig {
	t.Helper()
	tr, err := amisim.Recorded()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	job := &config.Job{Name: "conf", Path: filepath.Join(dir, "etc"), CheckTimeout: 10 * time.Second}
	if err := os.MkdirAll(job.Path, 0o755); err != nil {
		t.Fatal(err)
	}
	logTo := filepath.Join(dir, "messages.log")
	sim, err := amisim.Start(amisim.Config{Secret: astSecret, ConfigDir: job.Path, LogPath: logTo, Transcript: tr})
	if err != nil {
		t.Fatal(err)
	}
	secretFile := filepath.Join(dir, "ami.secret")
	if err := os.WriteFile(secretFile, []byte(astSecret), 0o600); err != nil {
		t.Fatal(err)
	}
	sess, err := asteriskctl.New(asteriskctl.Config{Addr: sim.Addr(), Username: "admin", SecretFile: secretFile})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		sess.Close(ctx)
		sim.Close(ctx)
	})
	return &transcriptRig{t: t, tr: tr, sim: sim, job: job, logTo: logTo,
		x: &AsteriskActions{AMI: sess, LogPath: logTo, LogSettle: 20 * time.Millisecond}}
}

// apply writes file with content, as an applied generation would, and
// runs AfterApply for it.
func (r *transcriptRig) apply(file, content string) error {
	r.t.Helper()
	if err := os.WriteFile(filepath.Join(r.job.Path, file), []byte(content), 0o644); err != nil {
		r.t.Fatal(err)
	}
	r.gen++
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	return r.x.AfterApply(ctx, r.job, r.gen, []string{file})
}

// reportable returns the first recorded log line of sc that a log check
// reports for file, filled in, or "".
func reportable(sc *amisim.Scenario, path string, line int, changed string) string {
	lc := &asteriskctl.LogChecker{Files: []string{changed}}
	dir, err := os.MkdirTemp("", "reportable")
	if err != nil {
		return ""
	}
	defer os.RemoveAll(dir)
	lc.Path = filepath.Join(dir, "log")
	mark, _ := lc.Mark()
	var b strings.Builder
	for _, l := range sc.Log {
		l = strings.NewReplacer("{time}", "Dec  1 21:06:59", "{file}", path, "{line}", fmt.Sprint(line)).Replace(l)
		b.WriteString(l + "\n")
	}
	os.WriteFile(lc.Path, []byte(b.String()), 0o644)
	res, err := lc.Since(context.Background(), mark)
	if err != nil || len(res.Findings) == 0 {
		return ""
	}
	// The placeholder time differs from the replayed one: compare from
	// the level on.
	f := res.Findings[0].Line
	return f[strings.Index(f, "]")+1:]
}

// TestTranscriptBuiltins: for every built-in reload entry recorded from a
// real Asterisk, the agent's verdict follows what that Asterisk did:
//
//   - good: the stock file reloads the module once and the generation is
//     good (a module whose load Asterisk declined is skipped, not failed);
//   - broken (an unclosed category): bad, with Asterisk's Error answer or
//     the log line as reason, except where Asterisk shows nothing
//     (cannotReport);
//   - no_equals (a line without '='): bad, quoting the warning, for the
//     file the generation changed;
//   - not_loaded: the file lands, the reload is skipped with the note.
func TestTranscriptBuiltins(t *testing.T) {
	t.Parallel()
	r := newTranscriptRig(t)
	t.Logf("transcript of %s", r.tr.Asterisk)
	covered := map[string]bool{}
	for i := range r.tr.Entries {
		e := &r.tr.Entries[i]
		covered[e.Pattern] = true
		t.Run(e.File, func(t *testing.T) {
			r.t = t
			if e.IncludeIn != "" {
				// The main file exists beside the included one.
				os.WriteFile(filepath.Join(r.job.Path, e.IncludeIn), []byte("; main\n#tryinclude "+e.File+"\n"), 0o644)
			}
			mod := strings.TrimSuffix(e.Module, ".so")
			path := filepath.Join(r.job.Path, e.File)
			if good, ok := e.Scenario(amisim.ScenarioGood); ok {
				before := r.sim.Count("Reload", "Module", e.Module)
				err := r.apply(e.File, "; a good "+e.File+"\n")
				ans, _ := good.Answer("Reload")
				if err != nil {
					t.Fatalf("good %s (Asterisk answered %v): %v", e.File, ans, err)
				}
				if n := r.sim.Count("Reload", "Module", e.Module) - before; n != 1 {
					t.Fatalf("good %s: %d reloads of %s, want 1", e.File, n, e.Module)
				}
			}
			if broken, ok := e.Scenario(amisim.ScenarioBroken); ok {
				const line = 2
				err := r.apply(e.File, "; broken\n"+amisim.BrokenLine+"\n")
				ans, _ := broken.Answer("Reload")
				msg := amisim.Get(ans, "Message")
				logLine := reportable(broken, path, line, path)
				switch {
				case !strings.EqualFold(amisim.Get(ans, "Response"), "Success") && msg != asteriskctl.MsgNotInitialized:
					if err == nil || !strings.Contains(err.Error(), "Asterisk answered Error to Reload: "+msg) {
						t.Fatalf("broken %s: got %v, want Asterisk's %q", e.File, err, msg)
					}
				case logLine != "":
					if err == nil || !strings.Contains(err.Error(), logLine) {
						t.Fatalf("broken %s: got %v, want the log line %q", e.File, err, logLine)
					}
				default:
					if !slices.Contains(cannotReport, e.File) {
						t.Fatalf("broken %s: Asterisk answered %v and logged %q; add it to cannotReport and docs/asterisk.md", e.File, ans, broken.Log)
					}
					if err != nil {
						t.Fatalf("broken %s that Asterisk cannot report: %v", e.File, err)
					}
				}
				if slices.Contains(cannotReport, e.File) && err != nil {
					t.Fatalf("%s is listed as unreportable but failed: %v", e.File, err)
				}
			}
			if ne, ok := e.Scenario(amisim.ScenarioNoEquals); ok {
				const line = 2
				err := r.apply(e.File, "[general]\n"+amisim.NoEqualsLine+"\n")
				ans, _ := ne.Answer("Reload")
				want := reportable(ne, path, line, path)
				if !strings.EqualFold(amisim.Get(ans, "Response"), "Success") && amisim.Get(ans, "Message") != asteriskctl.MsgNotInitialized {
					want = "Asterisk answered Error to Reload: " + amisim.Get(ans, "Message")
				}
				if want == "" {
					if err != nil {
						t.Fatalf("no '=' in %s, nothing reported by Asterisk: %v", e.File, err)
					}
				} else if err == nil || !strings.Contains(err.Error(), want) {
					t.Fatalf("no '=' in %s: got %v, want %q", e.File, err, want)
				}
			}
			if nl, ok := e.Scenario(amisim.ScenarioNotLoaded); ok && len(nl.Exchanges) > 0 {
				if e.Loaded {
					r.sim.SetModuleLoaded(e.Module, false)
					defer r.sim.SetModuleLoaded(e.Module, true)
				}
				err := r.apply(e.File, "; lands while "+mod+" is not loaded\n")
				if err != nil {
					t.Fatalf("%s with %s not loaded: %v", e.File, e.Module, err)
				}
				got := r.x.AsteriskStatus().Jobs["conf"][0]
				wantNote := mod + " not loaded: nothing to reload; Asterisk reads " + e.File + " when it loads the module"
				if len(got.Actions) != 2 || got.Actions[1].Result != "done" || got.Actions[0].Result != "skipped" || got.Actions[0].Reason != wantNote {
					t.Fatalf("%s with %s not loaded: actions %+v, want skipped: %q, then the log check", e.File, e.Module, got.Actions, wantNote)
				}
			}
			os.Remove(path)
		})
	}
	for _, b := range rules.Builtins() {
		if b.Action.Kind == rules.Reload && !covered[b.Pattern] {
			t.Errorf("built-in entry %s has no recorded transcript", b.Pattern)
		}
	}
}
