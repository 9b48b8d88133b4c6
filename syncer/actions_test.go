package syncer

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"pbxsync/asteriskctl"
	"pbxsync/internal/config"
)

// fakeAMI is a Controller double that records the actions it ran.
type fakeAMI struct {
	mu       sync.Mutex
	calls    []string
	channels int
	fail     map[string]error // by call, e.g. "reload pbx_config.so"
	onReload func(module string)
	// notLoaded modules answer Reload "No such module" and ModuleCheck
	// "Module not loaded", as a real Asterisk does.
	notLoaded map[string]bool
	cmdOut    map[string][]string // Command output by command
}

var _ asteriskctl.Controller = (*fakeAMI)(nil)

func (f *fakeAMI) call(c string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, c)
	return f.fail[c]
}

func (f *fakeAMI) Calls() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.calls)
}

func (f *fakeAMI) Reload(_ context.Context, module string) error {
	if f.onReload != nil {
		f.onReload(module)
	}
	if err := f.call("reload " + module); err != nil {
		return err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.notLoaded[module] {
		return fmt.Errorf("reload %s: %w", module, &asteriskctl.ActionError{Action: "Reload", Response: "Error", Message: "No such module"})
	}
	return nil
}
func (f *fakeAMI) Command(_ context.Context, cmd string) ([]string, error) {
	err := f.call("command " + cmd)
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.cmdOut[cmd], err
}
func (f *fakeAMI) CoreStatus(context.Context) (asteriskctl.CoreStatus, error) {
	return asteriskctl.CoreStatus{}, nil
}
func (f *fakeAMI) CoreSettings(context.Context) (asteriskctl.CoreSettings, error) {
	return asteriskctl.CoreSettings{}, nil
}
func (f *fakeAMI) Ping(context.Context) (time.Duration, error) { return 0, nil }
func (f *fakeAMI) ModuleCheck(_ context.Context, m string) (bool, error) {
	err := f.call("modulecheck " + m)
	f.mu.Lock()
	defer f.mu.Unlock()
	return !f.notLoaded[m], err
}
func (f *fakeAMI) Health(context.Context) (asteriskctl.Health, error) {
	return asteriskctl.Health{}, nil
}
func (f *fakeAMI) Restart(_ context.Context, w asteriskctl.RestartWhen) error {
	return f.call("restart " + string(w))
}
func (f *fakeAMI) ActiveChannels(context.Context) (int, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.channels, nil
}

func (f *fakeAMI) setChannels(n int) {
	f.mu.Lock()
	f.channels = n
	f.mu.Unlock()
}

func astTestJob(t *testing.T, rs ...config.Rule) *config.Job {
	return &config.Job{Name: "conf", Path: t.TempDir(), CheckTimeout: 10 * time.Second, Rules: rs}
}

// Without Asterisk: reloads and the ami/log checks are skipped, check
// commands and unconditional shell actions run, and a failing check still
// fails the generation.
func TestAsteriskActionsWithoutAMI(t *testing.T) {
	t.Parallel()
	job := astTestJob(t,
		config.Rule{Match: []string{"*.conf"}, Check: `test "$PBXSYNC_CHANGED" = extensions.conf`},
		config.Rule{Match: []string{"extensions.conf"}, Action: "shell touch shell-ran", When: ""},
	)
	job.Check = "test -f ok"
	x := &AsteriskActions{}
	err := x.AfterApply(context.Background(), job, 1, []string{"extensions.conf"})
	if err == nil || !strings.Contains(err.Error(), "test -f ok") {
		t.Fatalf("job check without the file: %v, want its failure", err)
	}
	if err := os.WriteFile(filepath.Join(job.Path, "ok"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := x.AfterApply(context.Background(), job, 2, []string{"extensions.conf"}); err != nil {
		t.Fatalf("no Asterisk, passing checks: %v", err)
	}
	if _, err := os.Stat(filepath.Join(job.Path, "shell-ran")); err != nil {
		t.Fatalf("the shell action did not run: %v", err)
	}
	// extensions.conf's shell rule overrides the builtin reload; pjsip.conf
	// plans a reload that cannot run without Asterisk: no error.
	if err := x.AfterApply(context.Background(), job, 3, []string{"pjsip.conf"}); err == nil || !strings.Contains(err.Error(), "PBXSYNC_CHANGED") {
		t.Fatalf("rule check with pjsip.conf: %v, want the rule check's failure", err)
	}
}

func TestAsteriskActionsRuleErrorNamesTheRule(t *testing.T) {
	t.Parallel()
	job := astTestJob(t, config.Rule{Match: []string{"*.conf"}, Check: "true"}, config.Rule{Match: []string{"x.conf"}, Action: "relaod x", Line: 17})
	x := &AsteriskActions{AMI: &fakeAMI{}}
	err := x.AfterApply(context.Background(), job, 1, []string{"x.conf"})
	if err == nil || !strings.Contains(err.Error(), "rule #2 (line 17)") || !strings.Contains(err.Error(), `"relaod"`) {
		t.Fatalf("got %v; want the second rule, its line and the bad verb", err)
	}
	// Cached, and recompiled when the rules change.
	job.Rules[1].Action = "reload x.so"
	if err := x.AfterApply(context.Background(), job, 2, []string{"x.conf"}); err != nil {
		t.Fatalf("after fixing the rule: %v", err)
	}
}

// Plan order, one reload per module, the Asterisk message in the error,
// and nothing run after a failed action.
func TestAsteriskActionsOrderAndFailure(t *testing.T) {
	t.Parallel()
	f := &fakeAMI{}
	x := &AsteriskActions{AMI: f}
	job := astTestJob(t)
	changed := []string{"extensions.conf", "extensions_custom.conf", "pjsip.conf", "pjsip_endpoints.conf", "voicemail.conf"}
	if err := x.AfterApply(context.Background(), job, 1, changed); err != nil {
		t.Fatal(err)
	}
	want := []string{"reload res_pjsip.so", "reload app_voicemail.so", "reload pbx_config.so"}
	if got := f.Calls(); !slices.Equal(got, want) {
		t.Fatalf("calls %v, want %v", got, want)
	}
	f.calls = nil
	f.fail = map[string]error{"reload res_pjsip.so": fmt.Errorf("reload res_pjsip.so: %w", &asteriskctl.ActionError{Action: "Reload", Response: "Error", Message: "An unknown error occurred"})}
	err := x.AfterApply(context.Background(), job, 2, changed)
	if err == nil || !strings.Contains(err.Error(), "reload res_pjsip.so: Asterisk answered Error to Reload: An unknown error occurred (for pjsip.conf, pjsip_endpoints.conf)") {
		t.Fatalf("got %v", err)
	}
	if errors.Is(err, ErrAsteriskUnavailable) {
		t.Error("an Asterisk answer counts as unavailable")
	}
	if got := f.Calls(); !slices.Equal(got, []string{"reload res_pjsip.so"}) {
		t.Fatalf("calls after a failure: %v", got)
	}
	f.calls = nil
	f.fail = map[string]error{"reload pbx_config.so": fmt.Errorf("reload pbx_config.so: %w for action Reload: refused", asteriskctl.ErrNotConnected)}
	if err := x.AfterApply(context.Background(), job, 3, []string{"extensions.conf"}); !errors.Is(err, ErrAsteriskUnavailable) || !errors.Is(err, asteriskctl.ErrNotConnected) {
		t.Fatalf("AMI not connected: %v, want ErrAsteriskUnavailable", err)
	}
}

// A restart that must wait for the calls to end does not fail the
// generation; it runs with the next generation once no channel is up, and
// then instead of that generation's reloads.
func TestAsteriskActionsDeferredRestart(t *testing.T) {
	t.Parallel()
	f := &fakeAMI{channels: 2}
	x := &AsteriskActions{AMI: f}
	job := astTestJob(t, config.Rule{Match: []string{"modules.conf"}, Action: "restart", When: "no-channels"})
	if err := x.AfterApply(context.Background(), job, 1, []string{"modules.conf", "extensions.conf"}); err != nil {
		t.Fatalf("a deferred restart failed the generation: %v", err)
	}
	if got := f.Calls(); !slices.Equal(got, []string{"reload pbx_config.so"}) {
		t.Fatalf("calls %v while channels are up; want the reload the waiting restart superseded", got)
	}
	f.calls = nil
	if p := x.Pending("conf"); len(p) != 1 || p[0].String() != "restart when convenient" {
		t.Fatalf("pending %v", p)
	}
	// Still busy: still pending, the new reload runs.
	if err := x.AfterApply(context.Background(), job, 2, []string{"pjsip.conf"}); err != nil {
		t.Fatal(err)
	}
	if got := f.Calls(); !slices.Equal(got, []string{"reload res_pjsip.so"}) {
		t.Fatalf("calls %v", got)
	}
	if len(x.Pending("conf")) != 1 {
		t.Fatal("the restart is no longer pending")
	}
	f.setChannels(0)
	f.calls = nil
	if err := x.AfterApply(context.Background(), job, 3, []string{"extensions.conf"}); err != nil {
		t.Fatal(err)
	}
	if got := f.Calls(); !slices.Equal(got, []string{"restart convenient"}) {
		t.Fatalf("calls %v, want only the pending restart", got)
	}
	if p := x.Pending("conf"); len(p) != 0 {
		t.Fatalf("still pending after it ran: %v", p)
	}
}

// The log check reads only what was written since the actions began and
// quotes the line.
func TestAsteriskActionsLogCheck(t *testing.T) {
	t.Parallel()
	logPath := filepath.Join(t.TempDir(), "messages")
	old := "[2026-01-01 00:00:00] WARNING[1]: config.c:1 x: parse error: old, before the mark\n"
	if err := os.WriteFile(logPath, []byte(old), 0o644); err != nil {
		t.Fatal(err)
	}
	var bad bool
	f := &fakeAMI{onReload: func(module string) {
		if bad {
			fl, _ := os.OpenFile(logPath, os.O_APPEND|os.O_WRONLY, 0)
			fmt.Fprintf(fl, "[2026-01-01 00:00:01] WARNING[1]: config.c:2290 process_text_line: parse error: No category context for line 4 of pjsip.conf\n")
			fl.Close()
		}
	}}
	x := &AsteriskActions{AMI: f, LogPath: logPath, LogSettle: time.Millisecond}
	job := astTestJob(t)
	if err := x.AfterApply(context.Background(), job, 1, []string{"pjsip.conf"}); err != nil {
		t.Fatalf("an old log line failed the check: %v", err)
	}
	bad = true
	err := x.AfterApply(context.Background(), job, 2, []string{"pjsip.conf"})
	if err == nil || !strings.Contains(err.Error(), "No category context for line 4 of pjsip.conf") || strings.Contains(err.Error(), "old, before") {
		t.Fatalf("got %v", err)
	}
}

type fakeService struct{ calls []string }

func (f *fakeService) Start(context.Context) error { f.calls = append(f.calls, "start"); return nil }
func (f *fakeService) Stop(context.Context) error  { f.calls = append(f.calls, "stop"); return nil }
func (f *fakeService) Restart(context.Context) error {
	f.calls = append(f.calls, "restart")
	return nil
}

// TestServiceActionWithoutAMI: a "service restart" rule works through
// systemd even where AMI is not configured (or is what broke).
func TestServiceActionWithoutAMI(t *testing.T) {
	t.Parallel()
	svc := &fakeService{}
	x := &AsteriskActions{Service: svc}
	job := &config.Job{Name: "conf", Path: t.TempDir(), Rules: []config.Rule{{Match: []string{"manager.conf"}, Action: "service restart"}}}
	if err := x.AfterApply(context.Background(), job, 1, []string{"manager.conf"}); err != nil {
		t.Fatal(err)
	}
	if strings.Join(svc.calls, ",") != "restart" {
		t.Fatalf("service calls %v, want one restart", svc.calls)
	}
	x.Service = nil
	if err := x.AfterApply(context.Background(), job, 2, []string{"manager.conf"}); err == nil || !strings.Contains(err.Error(), "no service control") {
		t.Fatalf("service action without a controller: %v", err)
	}
}

// A module that is not loaded (Reload answers "No such module", ModuleCheck
// "Module not loaded", as measured on Asterisk master): the generation is
// good, the reload skipped and logged and shown in the status; the other
// modules still reload. A module that ModuleCheck calls loaded but whose
// reload answers "No such module" still fails.
func TestAsteriskActionsModuleNotLoadedSkipsReload(t *testing.T) {
	t.Parallel()
	f := &fakeAMI{notLoaded: map[string]bool{"res_pjsip.so": true}}
	var logs logBuffer
	x := &AsteriskActions{AMI: f, Log: slog.New(slog.NewTextHandler(&logs, nil))}
	job := astTestJob(t)
	if err := x.AfterApply(context.Background(), job, 1, []string{"pjsip.conf", "extensions.conf"}); err != nil {
		t.Fatalf("a change to pjsip.conf with res_pjsip not loaded failed: %v", err)
	}
	want := []string{"reload res_pjsip.so", "modulecheck res_pjsip.so", "reload pbx_config.so"}
	if got := f.Calls(); !slices.Equal(got, want) {
		t.Fatalf("calls %v, want %v", got, want)
	}
	const note = "res_pjsip not loaded: nothing to reload; Asterisk reads pjsip.conf when it loads the module"
	if !strings.Contains(logs.String(), note) {
		t.Errorf("log lacks %q:\n%s", note, logs.String())
	}
	st := x.AsteriskStatus()
	ja := st.Jobs["conf"][0]
	if ja.Generation != 1 || len(ja.Actions) != 2 || ja.Actions[0].Result != "skipped" || ja.Actions[0].Reason != note || ja.Actions[1].Result != "done" {
		t.Fatalf("status %+v", ja)
	}

	// ModuleCheck disagrees: Asterisk's answer stands.
	f.calls = nil
	f.notLoaded = nil
	f.fail = map[string]error{"reload res_pjsip.so": fmt.Errorf("reload res_pjsip.so: %w", &asteriskctl.ActionError{Action: "Reload", Response: "Error", Message: "No such module"})}
	err := x.AfterApply(context.Background(), job, 2, []string{"pjsip.conf"})
	if err == nil || !strings.Contains(err.Error(), "No such module (ModuleCheck says res_pjsip is loaded)") {
		t.Fatalf("got %v", err)
	}
	if got := x.AsteriskStatus().Jobs["conf"][0].Actions; len(got) != 1 || got[0].Result != "failed" {
		t.Fatalf("status %+v", got)
	}
}

// With no log configured, the log check reads the file Asterisk names
// (core show settings, logger show channels) and status says which.
func TestAsteriskActionsFindsTheLog(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	logPath := filepath.Join(dir, "messages.log")
	if err := os.WriteFile(logPath, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	f := &fakeAMI{cmdOut: map[string][]string{
		"core show settings": {"PBX Core settings", "-----------------", "  Log directory:               " + dir},
		"logger show channels": {
			"Logger queue limit: 1000", "",
			"Channel                             Type     Formatter  Status    Configuration",
			"-------                             ----     ---------  ------    -------------",
			fmt.Sprintf("%-35.35s %-8.8s %-10.10s %-9.9s - NOTICE WARNING ERROR ", logPath, "File", "default", "Enabled"),
			fmt.Sprintf("%-35.35s %-8.8s %-10.10s %-9.9s - NOTICE WARNING ERROR ", "", "Console", "default", "Enabled"),
		},
	}}
	f.onReload = func(string) {
		fl, _ := os.OpenFile(logPath, os.O_APPEND|os.O_WRONLY, 0)
		fmt.Fprintf(fl, "[Dec  1 21:06:59] WARNING[30057] config.c: parse error: no closing ']', line 4 of %s/queues.conf\n", dir)
		fmt.Fprintf(fl, "[Dec  1 21:06:59] ERROR[30057] app_queue.c: Config file queues.conf is in an invalid format.  Aborting.\n")
		fl.Close()
	}
	x := &AsteriskActions{AMI: f, FindLog: true, LogSettle: time.Millisecond}
	err := x.AfterApply(context.Background(), astTestJob(t), 1, []string{"queues.conf"})
	if err == nil || !strings.Contains(err.Error(), "log check of "+logPath) || !strings.Contains(err.Error(), "Config file queues.conf is in an invalid format") {
		t.Fatalf("got %v (log %+v)", err, x.AsteriskStatus().Log)
	}
	if st := x.AsteriskStatus(); st.Log.Path != logPath || !strings.Contains(st.Log.How, "logger show channels") {
		t.Fatalf("status log %+v", st.Log)
	}
}

// "No '=' (equal sign)" fails a generation only for a file it changed.
func TestAsteriskActionsNoEqualsOnlyForChangedFiles(t *testing.T) {
	t.Parallel()
	logPath := filepath.Join(t.TempDir(), "messages.log")
	if err := os.WriteFile(logPath, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	job := astTestJob(t)
	var named string
	f := &fakeAMI{onReload: func(string) {
		fl, _ := os.OpenFile(logPath, os.O_APPEND|os.O_WRONLY, 0)
		fmt.Fprintf(fl, "[Dec  1 21:06:59] WARNING[30057] config.c: No '=' (equal sign) in line 3 of %s\n", named)
		fl.Close()
	}}
	x := &AsteriskActions{AMI: f, LogPath: logPath, LogSettle: time.Millisecond}
	named = filepath.Join(job.Path, "queues_other.conf") // included, not changed
	if err := x.AfterApply(context.Background(), job, 1, []string{"queues.conf"}); err != nil {
		t.Fatalf("a warning about an unchanged file failed the generation: %v", err)
	}
	named = filepath.Join(job.Path, "queues.conf")
	if err := x.AfterApply(context.Background(), job, 2, []string{"queues.conf"}); err == nil || !strings.Contains(err.Error(), "No '=' (equal sign) in line 3 of "+named) {
		t.Fatalf("got %v", err)
	}
}
