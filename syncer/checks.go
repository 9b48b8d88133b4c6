package syncer

import (
	"context"
	"fmt"

	"pbxsync/hostmon"
	"pbxsync/internal/config"
)

// AfterApply runs what must follow an applied generation on this host:
// the rules' actions (reloads) and the checks. A non-nil error means the
// generation is bad and must be rolled back; its text becomes the reason.
type AfterApply interface {
	AfterApply(ctx context.Context, job *config.Job, gen uint64, changed []string) error
}

// ShellChecks is the AfterApply that runs the job's `check` command and
// the `check` of every [[job.rule]] whose match covers a changed path, as
// `sh -c` in the job root, each with the job's check timeout.
type ShellChecks struct{}

// AfterApply implements AfterApply.
func (ShellChecks) AfterApply(ctx context.Context, job *config.Job, gen uint64, changed []string) error {
	var cmds []string
	seen := map[string]bool{}
	add := func(c string) {
		if c != "" && !seen[c] {
			seen[c] = true
			cmds = append(cmds, c)
		}
	}
	add(job.Check)
	for _, r := range job.Rules {
		if r.Check != "" && MatchesAny(r.Match, changed) {
			add(r.Check)
		}
	}
	for _, c := range cmds {
		if err := RunCheck(ctx, "", job, gen, changed, c); err != nil {
			return err
		}
	}
	return nil
}

// MatchesAny reports whether any path matches any glob (hostmon.Filter
// syntax: a glob without a slash matches the base name at any depth, "**"
// crosses directories).
func MatchesAny(globs, paths []string) bool {
	f, err := hostmon.NewFilter(globs, nil)
	if err != nil {
		return false
	}
	for _, p := range paths {
		if f.Match(p, false) {
			return true
		}
	}
	return false
}

// RunCheck runs one check command in the job root with PBXSYNC_JOB,
// PBXSYNC_GENERATION, PBXSYNC_CHANGED_FILE (a file in listDir, "": the
// system's temporary directory), PBXSYNC_CHANGED_COUNT and, when the
// changed paths fit, PBXSYNC_CHANGED set (see commandEnv). It fails on a
// non-zero exit, a timeout, or a command that cannot start; the error
// quotes the command and the last lines of its output.
func RunCheck(ctx context.Context, listDir string, job *config.Job, gen uint64, changed []string, command string) error {
	if err := runCommand(ctx, listDir, job, gen, changed, command); err != nil {
		return fmt.Errorf("check %w", err)
	}
	return nil
}
