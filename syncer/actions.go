package syncer

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
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
	AMI       asteriskctl.Controller // nil: no Asterisk configured
	LogPath   string                 // Asterisk log read by log checks; "": log checks pass
	LogSettle time.Duration          // wait before reading the log; 0: asteriskctl.DefaultLogSettle
	Log       *slog.Logger           // nil: discard
	Service   ServiceController      // systemd control of the Asterisk unit; nil: "service" actions fail

	amiMu sync.Mutex // held from the log mark to the end of the log check

	mu       sync.Mutex
	compiled map[string]compiledRules  // by job name
	pending  map[string][]rules.Action // deferred actions by job name
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
	if err := x.runActions(ctx, log, job, gen, changed, plan.Actions, plan.Superseded, checks); err != nil {
		return err
	}
	for _, c := range checks {
		if c.Kind != rules.CheckCommand {
			continue
		}
		if err := RunCheck(ctx, job, gen, changed, c.Command); err != nil {
			return err
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
				log.Debug("no [asterisk] configured: action skipped", "action", a.String(), "when", a.When, "paths", a.Paths)
				continue
			}
			if err := x.runAction(ctx, job, gen, changed, a); err != nil {
				return err
			}
			log.Info("action done", "action", a.String(), "paths", a.Paths)
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
	for _, d := range deferred {
		if d.Skipped {
			log.Info("action skipped", "action", d.Action.String(), "reason", d.Reason, "paths", d.Action.Paths)
			continue
		}
		log.Info("action deferred until the next generation of the job", "action", d.Action.String(), "reason", d.Reason, "paths", d.Action.Paths)
		keep = append(keep, d.Action)
	}
	if len(run) == 0 {
		x.setPending(job.Name, keep)
		return nil
	}

	x.amiMu.Lock()
	defer x.amiMu.Unlock()
	var checker *asteriskctl.LogChecker
	var mark asteriskctl.LogMark
	if hasCheck(checks, rules.CheckLog) && x.LogPath != "" {
		checker = asteriskctl.NewLogChecker(x.LogPath)
		if x.LogSettle != 0 {
			checker.Settle = max(x.LogSettle, 0)
		}
		var err error
		if mark, err = checker.Mark(); err != nil {
			x.setPending(job.Name, append(keep, run...))
			return err
		}
	}
	for i, a := range run {
		start := time.Now()
		if err := x.runAction(ctx, job, gen, changed, a); err != nil {
			// What did not run stays due (the restored generation's
			// reloads come from its own plan).
			x.setPending(job.Name, append(keep, run[i+1:]...))
			log.Warn("action failed", "action", a.String(), "paths", a.Paths, "err", err)
			return err
		}
		log.Info("action done", "action", a.String(), "paths", a.Paths, "took", time.Since(start).Round(time.Microsecond))
	}
	x.setPending(job.Name, keep)
	if checker != nil {
		res, err := checker.Since(ctx, mark)
		if err != nil {
			return err
		}
		if res.Incomplete != "" {
			log.Warn("log check read only part of the Asterisk log", "log", x.LogPath, "why", res.Incomplete)
		}
		if err := res.Error(); err != nil {
			return fmt.Errorf("log check of %s: %w", x.LogPath, err)
		}
	}
	return nil
}

// runAction runs one action. The error names the action, holds Asterisk's
// own message and the paths that triggered the action.
func (x *AsteriskActions) runAction(ctx context.Context, job *config.Job, gen uint64, changed []string, a rules.Action) error {
	var err error
	switch a.Kind {
	case rules.Reload:
		err = x.AMI.Reload(ctx, a.Module)
	case rules.AMICommand:
		_, err = x.AMI.Command(ctx, a.Command)
	case rules.Restart:
		err = x.AMI.Restart(ctx, restartWhen(a.Command))
	case rules.Shell:
		_, err = shell.Run(ctx, job.Path, a.Command, checkEnv(job, gen, changed), job.CheckTimeout)
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
		return nil
	default:
		err = fmt.Errorf("unknown action kind %v", a.Kind)
	}
	if err == nil {
		return nil
	}
	if !strings.HasPrefix(err.Error(), a.Kind.String()+" ") && !strings.HasPrefix(err.Error(), a.Kind.String()+":") {
		err = fmt.Errorf("%s: %w", a.String(), err)
	}
	if len(a.Paths) > 0 {
		err = fmt.Errorf("%w (for %s)", err, pathList(a.Paths))
	}
	if isUnavailable(err) {
		return &unavailableError{err}
	}
	return err
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

func checkEnv(job *config.Job, gen uint64, changed []string) []string {
	return []string{
		"PBXSYNC_JOB=" + job.Name,
		"PBXSYNC_GENERATION=" + strconv.FormatUint(gen, 10),
		"PBXSYNC_CHANGED=" + strings.Join(changed, "\n"),
	}
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
