package main

import (
	"context"
	"fmt"
	"io"
	"time"

	"pbxsync/internal/control"
)

func cmdSync(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := newFlags("sync", "[--config FILE] --job JOB [--now]",
		"Asks the running agent to sync a job now instead of waiting for its watcher:\non a source it rescans the whole tree, records a change it finds as a new\ngeneration and announces the newest generation at once to every target that\ndoes not hold it, inside the job's sync windows or not (the changes after it\nwait for the window again); on a push target it rescans the tree (restoring a\nlocal edit) and asks the source for its newest generation. The dashboard's\n\"sync now\" does the same.", stderr)
	cfgPath := fs.String("config", defaultConfig, "configuration file")
	jobName := fs.String("job", "", "job name (required)")
	fs.Bool("now", true, "sync now (the only mode; accepted for scripts that spell it out)")
	if code, done := parse(fs, args); done {
		return code
	}
	cfg, ok := loadJobConfig("sync", *cfgPath, *jobName, stderr)
	if !ok {
		return 1
	}
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	if _, err := control.Call(ctx, control.SocketPath(cfg.Node.DataDir), control.Request{Cmd: "sync", Job: *jobName}); err != nil {
		fmt.Fprintln(stderr, "pbxsync sync:", err)
		return 1
	}
	fmt.Fprintf(stdout, "job %s: rescanned and announced\n", *jobName)
	return 0
}
