package syncer

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"pbxsync/asteriskctl"
	"pbxsync/internal/config"
	"pbxsync/internal/shell"
	"pbxsync/rules"
)

// ErrAsteriskUnavailable is matched (errors.Is) by an AfterApply error that
// says nothing about the generation itself: the local Asterisk could not be
// reached (connection refused, login failed, connection lost, timeout). The
// generation is still bad (its actions did not run), but the same content
// may well pass once Asterisk is back.
var ErrAsteriskUnavailable = errors.New("asterisk unavailable")

// unavailableError keeps the text of an AMI error and adds
// ErrAsteriskUnavailable to its chain.
type unavailableError struct{ err error }

func (e *unavailableError) Error() string   { return e.err.Error() }
func (e *unavailableError) Unwrap() []error { return []error{e.err, ErrAsteriskUnavailable} }

// ServiceController starts, stops and restarts the Asterisk service
// (asteriskctl.ServiceControl through systemctl); "service" actions use it,
// with or without AMI.
type ServiceController interface {
	Start(ctx context.Context) error
	Stop(ctx context.Context) error
	Restart(ctx context.Context) error
}

// AsteriskActions is the AfterApply that makes Asterisk pick up a
// generation. For each applied generation it
//
//  1. compiles the job's [[job.rule]] entries with the built-in rules
//     (rules.Compile; cached per job configuration; an invalid rule makes
//     every generation of the job bad, naming the rule),
//  2. plans the actions and checks for the changed paths (Rules.Plan) and
//     adds the job-wide check command,
//  3. when actions have conditions, asks Asterisk for its state (AMI
//     answering, active channels) and splits the actions with rules.Decide,
//  4. marks the end of the Asterisk log, runs the actions in plan order
//     (Reload, Command and Restart over AMI, shell actions with sh -c in the
//     job root) and stops at the first that fails,
//  5. runs the checks: "ami" (every action answered Success: a failed action
//     already made the generation bad, with Asterisk's message as reason),
//     "log" (no parse error in the Asterisk log written since the mark; the
//     reason quotes the line) and the shell commands (RunCheck).
//
// Any error makes the syncer roll the generation back and call AfterApply
// again for the restored generation with the same changed paths, so the
// modules of the restored files are reloaded again.
//
// Without Asterisk (AMI nil) the AMI actions and the ami and log checks are
// skipped with a debug log, shell actions without conditions and the check
// commands still run: a node without [asterisk] runs the same check
// commands as ShellChecks, except that, as Rules.Plan decides, the check of
// a rule whose action lost to an earlier matching rule is not run.
//
// Deferred actions: an action whose condition does not hold (no-channels
// while calls are up) does not fail the generation. It is logged and kept
// pending for the job, and runs with the next generation of the job whose
// conditions allow it (merged into that generation's plan, deduplicated).
// A restart that runs replaces the reloads; while a planned restart waits,
// the reloads it superseded (Plan.Superseded) run now. An action skipped
// because Asterisk is down (asterisk-up) is not kept: Asterisk reads the
// files when it starts.
//
// The AMI work of one generation (log mark, actions, log check) runs at a
// time, across jobs, so a log check only sees what its own actions caused.
// Use it by pointer.
type AsteriskActions struct {
	AMI     asteriskctl.Controller // nil: no Asterisk configured
	LogPath string                 // Asterisk log read by log checks; "": see FindLog
	// FindLog: with no LogPath, ask Asterisk where it logs (core show
	// settings, logger show channels; asteriskctl.FindLog) before each
	// log check. Without it and without LogPath log checks pass.
	FindLog   bool
	LogSettle time.Duration     // wait before reading the log; 0: asteriskctl.DefaultLogSettle
	Log       *slog.Logger      // nil: discard
	Service   ServiceController // systemd control of the Asterisk unit; nil: "service" actions fail
	// ListDir is where a check command's or a shell action's list of
	// changed paths is written (PBXSYNC_CHANGED_FILE): the agent's data
	// directory, which it can always write (a unit with
	// ProtectSystem=strict and no PrivateTmp leaves /tmp read-only); "":
	// the system's temporary directory.
	ListDir string

	amiMu sync.Mutex // held from the log mark to the end of the log check

	mu       sync.Mutex
	compiled map[string]compiledRules  // by job name
	pending  map[string][]rules.Action // deferred actions by job name
	outcomes map[string][]JobActions   // the last generations' actions by job name, newest first
	logLoc   AsteriskLog               // the log log checks read
}

// AsteriskLog says which file log checks read and how pbxsync knows.
type AsteriskLog struct {
	Path  string `json:"path,omitempty"`
	How   string `json:"how"`             // "[asterisk] log", "found via AMI: …", or why there is none
	Error string `json:"error,omitempty"` // why Asterisk could not tell, when it could not
}

// ActionOutcome is what happened to one planned action.
type ActionOutcome struct {
	Action string `json:"action"` // e.g. "reload app_queue.so"
	Result string `json:"result"` // done, skipped, deferred, failed
	Reason string `json:"reason,omitempty"`
	// Paths are the first outcomePaths of the changed paths that asked
	// for the action, sorted; PathCount says how many there were.
	Paths     []string `json:"paths,omitempty"`
	PathCount int      `json:"path_count,omitempty"`
}

// outcomePaths bounds ActionOutcome.Paths, and logPaths the paths an
// action's log line lists: a generation of 100,000 files that one rule
// matches would otherwise put all of them in the status and in one log
// line (2.6 MB).
const (
	outcomePaths = 20
	logPaths     = 10
)

// outcomeOf is the outcome of a, with result and reason.
func outcomeOf(a rules.Action, result, reason string) ActionOutcome {
	return ActionOutcome{Action: a.String(), Result: result, Reason: reason, Paths: slices.Clone(a.Paths[:min(len(a.Paths), outcomePaths)]), PathCount: len(a.Paths)}
}

// JobActions are the outcomes of the actions and the log check of one
// generation that reached Asterisk (a rollback's restored generation
// included).
type JobActions struct {
	Generation uint64          `json:"generation"`
	Actions    []ActionOutcome `json:"actions"`
}

// AsteriskStatus is what `pbxsync status` shows of the Asterisk side: the
// log checks read and the last actions of each job.
type AsteriskStatus struct {
	Log AsteriskLog `json:"log"`
	// Jobs holds, per job, the last generations (keptOutcomes at most),
	// newest first.
	Jobs map[string][]JobActions `json:"jobs,omitempty"`
}

// keptOutcomes is how many generations' outcomes the status keeps per job:
// a bad generation and the restore that followed it, and one more.
const keptOutcomes = 3

// AsteriskStatus returns the log the log checks read and each job's last
// action outcomes (skipped reloads included).
func (x *AsteriskActions) AsteriskStatus() *AsteriskStatus {
	x.mu.Lock()
	defer x.mu.Unlock()
	st := &AsteriskStatus{Log: x.logLoc, Jobs: map[string][]JobActions{}}
	switch {
	case x.LogPath != "":
		st.Log = AsteriskLog{Path: x.LogPath, How: "[asterisk] log"}
	case x.AMI == nil:
		st.Log = AsteriskLog{How: "no [asterisk] ami: no log checks"}
	case !x.FindLog:
		st.Log = AsteriskLog{How: "no log configured: no log checks"}
	case st.Log.How == "":
		st.Log.How = "asked from Asterisk at the first log check"
	}
	for j, os := range x.outcomes {
		for _, o := range os {
			st.Jobs[j] = append(st.Jobs[j], JobActions{Generation: o.Generation, Actions: slices.Clone(o.Actions)})
		}
	}
	return st
}

func (x *AsteriskActions) setOutcomes(job string, gen uint64, os []ActionOutcome) {
	x.mu.Lock()
	defer x.mu.Unlock()
	if x.outcomes == nil {
		x.outcomes = map[string][]JobActions{}
	}
	all := append([]JobActions{{Generation: gen, Actions: os}}, x.outcomes[job]...)
	x.outcomes[job] = all[:min(len(all), keptOutcomes)]
}

// logPath returns the log for a log check: LogPath, or, with FindLog,
// what Asterisk says now (what it said last while AMI does not answer).
// "" when there is none: log checks pass, and the status says why.
func (x *AsteriskActions) logPath(ctx context.Context, log *slog.Logger) (string, error) {
	if x.LogPath != "" || !x.FindLog {
		return x.LogPath, nil
	}
	loc, err := asteriskctl.FindLog(ctx, x.AMI, fileExists)
	x.mu.Lock()
	prev := x.logLoc
	if err != nil && isUnavailable(err) {
		// AMI is away: keep the file Asterisk named last (the reloads
		// will fail on their own if it stays away).
		x.mu.Unlock()
		return prev.Path, nil
	}
	if err != nil {
		x.logLoc = AsteriskLog{How: "not found", Error: err.Error()}
	} else {
		x.logLoc = AsteriskLog{Path: loc.Path, How: loc.How}
	}
	x.mu.Unlock()
	if err != nil {
		if prev.Error != err.Error() {
			log.Warn("log checks are off: Asterisk logs warnings and errors to no file pbxsync can read", "err", err)
		}
		return "", nil
	}
	if prev.Path != loc.Path {
		log.Info("log checks read the Asterisk log Asterisk named", "log", loc.Path, "how", loc.How, "levels", loc.Levels)
	}
	return loc.Path, nil
}

// fileExists reports whether p is a regular file.
func fileExists(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && fi.Mode().IsRegular()
}

type compiledRules struct {
	key   string // the job's rules as compiled, see rulesKey
	rules *rules.Rules
	err   error
}

var _ AfterApply = (*AsteriskActions)(nil)

// AfterApply implements AfterApply.
func (x *AsteriskActions) AfterApply(ctx context.Context, job *config.Job, gen uint64, changed []string) error {
	log := x.logger().With("job", job.Name, "generation", gen)
	rs, err := x.rulesFor(job)
	if err != nil {
		return err
	}
	plan, err := rs.Plan(changed)
	if err != nil {
		return err
	}
	checks := withJobCheck(plan.Checks, job.Check)
	if runsCommands(plan.Actions, checks) && !changedFitsEnv(changed) {
		log.Info("the changed paths are too many for PBXSYNC_CHANGED: checks and shell actions read them from PBXSYNC_CHANGED_FILE", "paths", len(changed))
	}
	if err := x.runActions(ctx, log, job, gen, changed, plan.Actions, plan.Superseded, checks); err != nil {
		return err
	}
	for _, c := range checks {
		if c.Kind != rules.CheckCommand {
			continue
		}
		if err := RunCheck(ctx, x.ListDir, job, gen, changed, c.Command); err != nil {
			return err
		}
	}
	return nil
}

// amiConnector is what an AsteriskActions' AMI may also tell: whether
// its session is up now (asteriskctl.Session).
type amiConnector interface {
	Connected() bool
	LastError() error
}

// Unreachable reports, before a generation that changed these paths is
// applied, that applying it now could only fail: an action Asterisk must
// run for them needs AMI (a reload, a command or a restart that its
// condition does not skip while Asterisk is down) and the AMI session is
// not up. The error wraps ErrAsteriskUnavailable. nil when AMI is up, when
// no AMI action is planned, or when the AMI cannot tell (no Connected).
func (x *AsteriskActions) Unreachable(job *config.Job, changed []string) error {
	c, ok := x.AMI.(amiConnector)
	if x.AMI == nil || !ok || c.Connected() {
		return nil
	}
	rs, err := x.rulesFor(job)
	if err != nil {
		return nil // AfterApply reports it
	}
	plan, err := rs.Plan(changed)
	if err != nil {
		return nil
	}
	run, _ := rules.Decide(rules.Plan{Actions: plan.Actions}, rules.HostState{}) // Asterisk down
	for _, a := range run {
		if a.Kind == rules.Reload || a.Kind == rules.AMICommand || a.Kind == rules.Restart {
			why := c.LastError()
			if why == nil {
				why = errors.New("not connected")
			}
			return &unavailableError{fmt.Errorf("%s needs Asterisk, whose AMI is down: %w", a.String(), why)}
		}
	}
	return nil
}

func (x *AsteriskActions) logger() *slog.Logger {
	if x.Log == nil {
		return slog.New(slog.DiscardHandler)
	}
	return x.Log
}

// rulesKey identifies what Compile depends on.
func rulesKey(rs []config.Rule) string {
	var b strings.Builder
	for _, r := range rs {
		fmt.Fprintf(&b, "%q|%q|%q|%q;", r.Match, r.Action, r.Check, r.When)
	}
	return b.String()
}

// rulesFor returns the job's compiled rules, compiling them when the job is
// new or its rules changed.
func (x *AsteriskActions) rulesFor(job *config.Job) (*rules.Rules, error) {
	key := rulesKey(job.Rules)
	x.mu.Lock()
	defer x.mu.Unlock()
	if c, ok := x.compiled[job.Name]; ok && c.key == key {
		return c.rules, c.err
	}
	rs, err := rules.Compile(job.Rules, true)
	if err != nil {
		err = ruleError(job, err)
	}
	if x.compiled == nil {
		x.compiled = map[string]compiledRules{}
	}
	x.compiled[job.Name] = compiledRules{key: key, rules: rs, err: err}
	return rs, err
}

// ruleError names each invalid rule as `pbxsync check` does: by its number
// from 1 and its line.
func ruleError(job *config.Job, err error) error {
	errs := []error{err}
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		errs = j.Unwrap()
	}
	parts := make([]string, 0, len(errs))
	for _, e := range errs {
		var re *rules.RuleError
		if !errors.As(e, &re) {
			parts = append(parts, e.Error())
			continue
		}
		where := fmt.Sprintf("rule #%d", re.Index+1)
		if re.Index >= 0 && re.Index < len(job.Rules) && job.Rules[re.Index].Line > 0 {
			where += fmt.Sprintf(" (line %d)", job.Rules[re.Index].Line)
		}
		parts = append(parts, where+": "+re.Err.Error())
	}
	return fmt.Errorf("job %q has an invalid [[job.rule]]: %s", job.Name, strings.Join(parts, "; "))
}

// withJobCheck adds the job-wide check command before the rules' commands,
// unless a rule asks for the same command.
func withJobCheck(checks []rules.Check, cmd string) []rules.Check {
	cmd = strings.TrimSpace(cmd)
	if cmd == "" {
		return checks
	}
	for _, c := range checks {
		if c.Kind == rules.CheckCommand && c.Command == cmd {
			return checks
		}
	}
	out := make([]rules.Check, 0, len(checks)+1)
	i := 0
	for ; i < len(checks) && checks[i].Kind != rules.CheckCommand; i++ {
		out = append(out, checks[i])
	}
	out = append(out, rules.Check{Kind: rules.CheckCommand, Command: cmd, Rule: "job.check"})
	return append(out, checks[i:]...)
}

func hasCheck(checks []rules.Check, k rules.CheckKind) bool {
	return slices.ContainsFunc(checks, func(c rules.Check) bool { return c.Kind == k })
}

// runActions runs what the plan asks of Asterisk and the shell, and the
// log check.
func (x *AsteriskActions) runActions(ctx context.Context, log *slog.Logger, job *config.Job, gen uint64, changed []string, planned, superseded []rules.Action, checks []rules.Check) error {
	if x.AMI == nil {
		for _, a := range planned {
			if (a.Kind != rules.Shell && a.Kind != rules.Service) || (a.When != "" && a.When != rules.WhenAlways) {
				log.Debug("no [asterisk] configured: action skipped", "action", a.String(), "when", a.When, "paths", firstN(a.Paths, logPaths))
				continue
			}
			if _, err := x.runAction(ctx, job, gen, changed, a); err != nil {
				return err
			}
			log.Info("action done", "action", a.String(), "paths", firstN(a.Paths, logPaths))
		}
		if len(planned) > 0 && (hasCheck(checks, rules.CheckAMI) || hasCheck(checks, rules.CheckLog)) {
			log.Debug("no [asterisk] configured: ami and log checks skipped")
		}
		return nil
	}

	actions := x.withPending(job.Name, append(slices.Clone(planned), superseded...))
	st := rules.HostState{AsteriskUp: true}
	if needsHostState(actions) {
		st = x.hostState(ctx, log)
	}
	run, deferred := rules.Decide(rules.Plan{Actions: actions}, st)
	if slices.ContainsFunc(run, func(a rules.Action) bool { return a.Kind == rules.Restart }) {
		// The restart reloads everything.
		run = slices.DeleteFunc(run, func(a rules.Action) bool { return a.Kind == rules.Reload })
	}
	var keep []rules.Action
	var outcomes []ActionOutcome
	for _, d := range deferred {
		if d.Skipped {
			log.Info("action skipped", "action", d.Action.String(), "reason", d.Reason, "paths", firstN(d.Action.Paths, logPaths))
			outcomes = append(outcomes, outcomeOf(d.Action, "skipped", d.Reason))
			continue
		}
		log.Info("action deferred until the next generation of the job", "action", d.Action.String(), "reason", d.Reason, "paths", firstN(d.Action.Paths, logPaths))
		outcomes = append(outcomes, outcomeOf(d.Action, "deferred", d.Reason))
		keep = append(keep, d.Action)
	}
	defer func() { x.setOutcomes(job.Name, gen, outcomes) }()
	if len(run) == 0 {
		x.setPending(job.Name, keep)
		return nil
	}

	x.amiMu.Lock()
	defer x.amiMu.Unlock()
	var checker *asteriskctl.LogChecker
	var mark asteriskctl.LogMark
	if hasCheck(checks, rules.CheckLog) {
		path, err := x.logPath(ctx, log)
		if err != nil {
			x.setPending(job.Name, append(keep, run...))
			return fmt.Errorf("log check: %w", err)
		}
		if path != "" {
			checker = asteriskctl.NewLogChecker(path)
			checker.Files = changedFiles(job.Path, changed)
			if x.LogSettle != 0 {
				checker.Settle = max(x.LogSettle, 0)
			}
			if mark, err = checker.Mark(); err != nil {
				x.setPending(job.Name, append(keep, run...))
				return err
			}
		}
	}
	for i, a := range run {
		start := time.Now()
		skipped, err := x.runAction(ctx, job, gen, changed, a)
		if err != nil {
			// What did not run stays due (the restored generation's
			// reloads come from its own plan).
			x.setPending(job.Name, append(keep, run[i+1:]...))
			log.Warn("action failed", "action", a.String(), "paths", firstN(a.Paths, logPaths), "err", err)
			outcomes = append(outcomes, outcomeOf(a, "failed", err.Error()))
			return err
		}
		if skipped != "" {
			log.Info("reload skipped", "action", a.String(), "reason", skipped, "paths", firstN(a.Paths, logPaths))
			outcomes = append(outcomes, outcomeOf(a, "skipped", skipped))
			continue
		}
		log.Info("action done", "action", a.String(), "paths", firstN(a.Paths, logPaths), "took", time.Since(start).Round(time.Microsecond))
		outcomes = append(outcomes, outcomeOf(a, "done", ""))
	}
	x.setPending(job.Name, keep)
	if checker != nil {
		res, err := checker.Since(ctx, mark)
		if err != nil {
			return err
		}
		if res.Incomplete != "" {
			log.Warn("log check read only part of the Asterisk log", "log", checker.Path, "why", res.Incomplete)
		}
		if err := res.Error(); err != nil {
			err = fmt.Errorf("log check of %s: %w", checker.Path, err)
			outcomes = append(outcomes, ActionOutcome{Action: "log check " + checker.Path, Result: "failed", Reason: err.Error()})
			return err
		}
		outcomes = append(outcomes, ActionOutcome{Action: "log check " + checker.Path, Result: "done"})
	}
	return nil
}

// changedFiles returns the changed paths as absolute paths in the job
// root, for the log check's scoped patterns.
func changedFiles(root string, changed []string) []string {
	out := make([]string, 0, len(changed))
	for _, p := range changed {
		out = append(out, filepath.Join(root, filepath.FromSlash(p)))
	}
	return out
}

// runAction runs one action. The error names the action, holds Asterisk's
// own message and the paths that triggered the action. A reload of a
// module Asterisk does not run, or of one without a reload, is not an
// error: runAction returns why it was skipped.
func (x *AsteriskActions) runAction(ctx context.Context, job *config.Job, gen uint64, changed []string, a rules.Action) (skipped string, _ error) {
	var err error
	switch a.Kind {
	case rules.Reload:
		err = x.AMI.Reload(ctx, a.Module)
		if a.Module != "" && err != nil {
			var why string
			why, err = x.reloadRefused(ctx, a, err)
			if err == nil {
				return why, nil
			}
		}
	case rules.AMICommand:
		_, err = x.AMI.Command(ctx, a.Command)
	case rules.Restart:
		err = x.AMI.Restart(ctx, restartWhen(a.Command))
	case rules.Shell:
		err = runCommand(ctx, x.ListDir, job, gen, changed, a.Command)
	case rules.Service:
		switch {
		case x.Service == nil:
			err = errors.New("no service control configured")
		case a.Command == "start":
			err = x.Service.Start(ctx)
		case a.Command == "stop":
			err = x.Service.Stop(ctx)
		default:
			err = x.Service.Restart(ctx)
		}
	case rules.None:
		return "", nil
	default:
		err = fmt.Errorf("unknown action kind %v", a.Kind)
	}
	if err == nil {
		return "", nil
	}
	if !strings.HasPrefix(err.Error(), a.Kind.String()+" ") && !strings.HasPrefix(err.Error(), a.Kind.String()+":") {
		err = fmt.Errorf("%s: %w", a.String(), err)
	}
	if len(a.Paths) > 0 {
		err = fmt.Errorf("%w (for %s)", err, pathList(a.Paths))
	}
	if isUnavailable(err) {
		return "", &unavailableError{err}
	}
	return "", err
}

// reloadRefused decides what a refused Reload of a.Module means. Asterisk
// answers "No such module" when no module of that name is loaded: then
// nothing reads the file now, Asterisk reads it when it loads the module,
// and the reload is skipped once ModuleCheck confirms ("Module not
// loaded"). "Module not initialized" answers a module whose load Asterisk
// declined (ModuleCheck still calls it loaded): skipped too. A loaded
// module without a reload ("Module does not support reload") is skipped:
// the file takes effect when the module loads again. Any other answer is
// the module refusing its configuration and stays an error.
func (x *AsteriskActions) reloadRefused(ctx context.Context, a rules.Action, reloadErr error) (string, error) {
	mod := strings.TrimSuffix(a.Module, ".so")
	files := baseNames(a.Paths)
	switch {
	case errors.Is(reloadErr, asteriskctl.ErrNotInitialized):
		// A declined load (cdr_custom with the stock file): ModuleCheck
		// calls such a module loaded, but it does not run.
		return fmt.Sprintf("%s is not running (Asterisk declined to load it): nothing to reload; Asterisk reads %s when the module is loaded (module load %s.so, or a restart)", mod, files, mod), nil
	case errors.Is(reloadErr, asteriskctl.ErrNoSuchModule):
		loaded, err := x.AMI.ModuleCheck(ctx, a.Module)
		if err != nil {
			return "", fmt.Errorf("%w; and ModuleCheck: %w", reloadErr, err)
		}
		if loaded {
			return "", fmt.Errorf("%w (ModuleCheck says %s is loaded)", reloadErr, mod)
		}
		return fmt.Sprintf("%s not loaded: nothing to reload; Asterisk reads %s when it loads the module", mod, files), nil
	case errors.Is(reloadErr, asteriskctl.ErrReloadNotSupported):
		return fmt.Sprintf("%s has no reload: Asterisk reads %s when it loads the module (restart or module load)", mod, files), nil
	}
	return "", reloadErr
}

// baseNames lists the base names of paths for messages ("the module's
// files" when there are none).
func baseNames(paths []string) string {
	if len(paths) == 0 {
		return "the module's files"
	}
	names := make([]string, 0, len(paths))
	for _, p := range paths {
		names = append(names, path.Base(p))
	}
	return pathList(slices.Compact(names))
}

func isUnavailable(err error) bool {
	return errors.Is(err, asteriskctl.ErrNotConnected) || errors.Is(err, asteriskctl.ErrConnectionLost) ||
		errors.Is(err, asteriskctl.ErrTimeout) || errors.Is(err, asteriskctl.ErrClosed) ||
		errors.Is(err, asteriskctl.ErrLoginFailed)
}

func pathList(ps []string) string {
	const most = 3
	if len(ps) <= most {
		return strings.Join(ps, ", ")
	}
	return fmt.Sprintf("%s and %d more", strings.Join(ps[:most], ", "), len(ps)-most)
}

// changedEnvMax bounds PBXSYNC_CHANGED: Linux refuses to start a program
// with one environment string over 128 KiB (MAX_ARG_STRLEN: "argument
// list too long"), which ~5,000 changed paths reach. A longer list is in
// PBXSYNC_CHANGED_FILE only.
const changedEnvMax = 64 << 10

// changedFitsEnv reports whether changed fits in PBXSYNC_CHANGED
// (changedEnvMax).
func changedFitsEnv(changed []string) bool {
	size := 0
	for _, p := range changed {
		if size += len(p) + 1; size > changedEnvMax {
			return false
		}
	}
	return true
}

// runsCommands reports whether actions or checks run a shell command.
func runsCommands(actions []rules.Action, checks []rules.Check) bool {
	return slices.ContainsFunc(actions, func(a rules.Action) bool { return a.Kind == rules.Shell }) ||
		slices.ContainsFunc(checks, func(c rules.Check) bool { return c.Kind == rules.CheckCommand })
}

// commandEnv is what a check or a shell action gets beside the agent's
// environment: the job, the generation and its changed paths, those both
// in a file in dir ("": the system's temporary directory;
// PBXSYNC_CHANGED_FILE, one per line, however many) and, when they fit
// (changedEnvMax), in PBXSYNC_CHANGED; PBXSYNC_CHANGED_COUNT says how many
// there are. done removes the file; call it once the command has ended.
func commandEnv(dir string, job *config.Job, gen uint64, changed []string) (env []string, done func(), err error) {
	f, err := os.CreateTemp(dir, "pbxsync-changed-*")
	if err != nil {
		return nil, nil, fmt.Errorf("list the changed paths for the command: %w", err)
	}
	done = func() { os.Remove(f.Name()) }
	w := bufio.NewWriter(f)
	for _, p := range changed {
		w.WriteString(p)
		w.WriteByte('\n')
	}
	if err := errors.Join(w.Flush(), f.Close()); err != nil {
		done()
		return nil, nil, fmt.Errorf("list the changed paths for the command: %w", err)
	}
	env = []string{
		"PBXSYNC_JOB=" + job.Name,
		"PBXSYNC_GENERATION=" + strconv.FormatUint(gen, 10),
		"PBXSYNC_CHANGED_FILE=" + f.Name(),
		"PBXSYNC_CHANGED_COUNT=" + strconv.Itoa(len(changed)),
	}
	if changedFitsEnv(changed) {
		env = append(env, "PBXSYNC_CHANGED="+strings.Join(changed, "\n"))
	}
	return env, done, nil
}

// runCommand runs command (a check or a shell action) in the job root
// with commandEnv's environment, its list of paths in dir.
func runCommand(ctx context.Context, dir string, job *config.Job, gen uint64, changed []string, command string) error {
	env, done, err := commandEnv(dir, job, gen, changed)
	if err != nil {
		return fmt.Errorf("%q: %w", command, err)
	}
	defer done()
	_, err = shell.Run(ctx, job.Path, command, env, job.CheckTimeout)
	return err
}

func restartWhen(cmd string) asteriskctl.RestartWhen {
	switch cmd {
	case rules.RestartNow:
		return asteriskctl.RestartNow
	case rules.RestartGracefully:
		return asteriskctl.RestartGracefully
	}
	return asteriskctl.RestartConvenient
}

func needsHostState(as []rules.Action) bool {
	return slices.ContainsFunc(as, func(a rules.Action) bool { return a.When != "" && a.When != rules.WhenAlways })
}

// hostState asks Asterisk for what conditions need. An Asterisk that does
// not answer counts as down.
func (x *AsteriskActions) hostState(ctx context.Context, log *slog.Logger) rules.HostState {
	n, err := x.AMI.ActiveChannels(ctx)
	if err != nil {
		log.Info("Asterisk does not answer; conditions see it as down", "err", err)
		return rules.HostState{}
	}
	return rules.HostState{AsteriskUp: true, ActiveChannels: n}
}

// Pending actions.

func (x *AsteriskActions) setPending(job string, as []rules.Action) {
	x.mu.Lock()
	defer x.mu.Unlock()
	if len(as) == 0 {
		delete(x.pending, job)
		return
	}
	if x.pending == nil {
		x.pending = map[string][]rules.Action{}
	}
	x.pending[job] = slices.Clone(as)
}

// Pending returns the actions of job deferred by their conditions, which
// run with the job's next generation.
func (x *AsteriskActions) Pending(job string) []rules.Action {
	x.mu.Lock()
	defer x.mu.Unlock()
	return slices.Clone(x.pending[job])
}

// withPending merges the job's pending actions into a generation's
// actions: duplicates once, kinds in plan order (reloads, AMI commands,
// shell commands, restart), pending ones after the planned ones of their
// kind, and at most one restart (the strongest).
func (x *AsteriskActions) withPending(job string, actions []rules.Action) []rules.Action {
	out := slices.Clone(actions)
	for _, p := range x.Pending(job) {
		if !slices.ContainsFunc(out, func(a rules.Action) bool { return actionKey(a) == actionKey(p) }) {
			out = append(out, p)
		}
	}
	slices.SortStableFunc(out, func(a, b rules.Action) int { return kindRank(a.Kind) - kindRank(b.Kind) })
	var restart *rules.Action
	for i := range out {
		if out[i].Kind == rules.Restart && (restart == nil || restartStrength(out[i].Command) > restartStrength(restart.Command)) {
			restart = &out[i]
		}
	}
	if restart == nil {
		return out
	}
	r := *restart
	return append(slices.DeleteFunc(out, func(a rules.Action) bool { return a.Kind == rules.Restart }), r)
}

func actionKey(a rules.Action) string {
	if a.Kind == rules.Reload {
		return "reload " + strings.TrimSuffix(strings.ToLower(a.Module), ".so")
	}
	return a.Kind.String() + " " + a.Command
}

func kindRank(k rules.Kind) int {
	switch k {
	case rules.Reload:
		return 0
	case rules.AMICommand:
		return 1
	case rules.Shell:
		return 2
	case rules.Service:
		return 3
	case rules.Restart:
		return 4
	}
	return 5
}

func restartStrength(cmd string) int {
	switch cmd {
	case rules.RestartNow:
		return 3
	case rules.RestartGracefully:
		return 2
	}
	return 1
}
