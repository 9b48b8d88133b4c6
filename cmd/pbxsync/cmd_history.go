package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"pbxsync/internal/config"
	"pbxsync/internal/control"
	"pbxsync/internal/history"
	"pbxsync/internal/store"
)

func cmdHistory(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := newFlags("history", "[--config FILE] --job JOB [--json]",
		"Lists a job's generations from the store in data_dir (works whether or not the\nagent runs). --json prints an array of objects: generation, time, origin,\nchanged, state (applying, good, bad, rolled-back) and reason.", stderr)
	cfgPath := fs.String("config", defaultConfig, "configuration file")
	jobName := fs.String("job", "", "job name (required)")
	asJSON := fs.Bool("json", false, "print JSON")
	if code, done := parse(fs, args); done {
		return code
	}
	cfg, ok := loadJobConfig("history", *cfgPath, *jobName, stderr)
	if !ok {
		return 1
	}
	st, err := store.OpenReadOnly(filepath.Join(cfg.Node.DataDir, "store"), slog.New(slog.DiscardHandler))
	if err != nil {
		fmt.Fprintln(stderr, "pbxsync history:", err)
		return 1
	}
	defer st.Close()
	gens, err := history.List(st, *jobName)
	if err != nil {
		fmt.Fprintln(stderr, "pbxsync history:", err)
		return 1
	}
	if *asJSON {
		b, _ := json.MarshalIndent(gens, "", "  ")
		fmt.Fprintln(stdout, string(b))
		return 0
	}
	tw := tabwriter.NewWriter(stdout, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "GEN\tTIME\tORIGIN\tSTATE\tCHANGED\tREASON")
	for _, g := range gens {
		changed := strings.Join(firstPaths(g.Changed, 3), ", ")
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%s\n", g.Number, g.Time.Local().Format(time.DateTime), g.Origin, g.State, changed, g.Reason)
	}
	tw.Flush()
	return 0
}

func firstPaths(p []string, n int) []string {
	if len(p) <= n {
		return p
	}
	return append(append([]string(nil), p[:n]...), fmt.Sprintf("+%d more", len(p)-n))
}

// loadJobConfig loads the configuration at path and checks that it has the
// job called name; it prints what is wrong to stderr and returns false.
func loadJobConfig(cmd, path, name string, stderr io.Writer) (*config.Config, bool) {
	cfg, err := config.Load(path)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return nil, false
	}
	if _, ok := cfg.JobByName(name); !ok {
		fmt.Fprintf(stderr, "pbxsync %s: %s has no job %q (jobs: %s)\n", cmd, cfg.File, name, jobNames(cfg))
		return nil, false
	}
	return cfg, true
}

func jobNames(cfg *config.Config) string {
	var names []string
	for _, j := range cfg.Jobs {
		names = append(names, j.Name)
	}
	return strings.Join(names, ", ")
}

func cmdRollback(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := newFlags("rollback", "[--config FILE] --job JOB [--to N] [--hold]",
		"Restores generation N of a job (default: the newest good generation before the\ncurrent one) from the local store, without the network. On a push source the\nrestored tree becomes a new generation that goes to every target: the whole\nfarm rolls back. Refuses a generation whose stored content is damaged.\n\nOn a push target a plain rollback is refused (the source would restore its\nversion at once; run it on the source, which the error names). With --hold the\ntarget is rolled back and held at that generation: it takes no new generation\n(status says \"held by operator at N\"), also across restarts, until\n'pbxsync resume --job JOB'.", stderr)
	cfgPath := fs.String("config", defaultConfig, "configuration file")
	jobName := fs.String("job", "", "job name (required)")
	to := fs.Uint64("to", 0, "generation to restore (0: the previous good one)")
	hold := fs.Bool("hold", false, "on a push target: roll back and hold the job there until 'pbxsync resume'")
	if code, done := parse(fs, args); done {
		return code
	}
	cfg, ok := loadJobConfig("rollback", *cfgPath, *jobName, stderr)
	if !ok {
		return 1
	}
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	resp, err := control.Call(ctx, control.SocketPath(cfg.Node.DataDir), control.Request{Cmd: "rollback", Job: *jobName, To: *to, Hold: *hold})
	if err != nil {
		fmt.Fprintln(stderr, "pbxsync rollback:", err)
		return 1
	}
	if *hold {
		fmt.Fprintf(stdout, "job %s is now at generation %d and held there; 'pbxsync resume --job %s' takes new generations again\n", *jobName, resp.Generation, *jobName)
		return 0
	}
	fmt.Fprintf(stdout, "job %s is now at generation %d\n", *jobName, resp.Generation)
	return 0
}

func cmdResume(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := newFlags("resume", "[--config FILE] --job JOB",
		"Ends the hold that 'pbxsync rollback --hold' put on a push target: the job takes\nthe source's newest generation again at once.", stderr)
	cfgPath := fs.String("config", defaultConfig, "configuration file")
	jobName := fs.String("job", "", "job name (required)")
	if code, done := parse(fs, args); done {
		return code
	}
	cfg, ok := loadJobConfig("resume", *cfgPath, *jobName, stderr)
	if !ok {
		return 1
	}
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	if _, err := control.Call(ctx, control.SocketPath(cfg.Node.DataDir), control.Request{Cmd: "resume", Job: *jobName}); err != nil {
		fmt.Fprintln(stderr, "pbxsync resume:", err)
		return 1
	}
	fmt.Fprintf(stdout, "job %s resumed: it takes the source's generations again\n", *jobName)
	return 0
}
