package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"text/tabwriter"
	"time"

	"pbxsync/internal/history"
	"pbxsync/internal/store"
)

func cmdConflicts(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := newFlags("conflicts", "[--config FILE] --job JOB [--json | --get ID]",
		"Lists the conflicts of a mesh job: concurrent versions of a file, the winner\nlive on every member, the loser kept in this node's store (works whether or not\nthe agent runs). --json prints an array of objects: id, path, time,\nwinner{node, generation, hash} and loser{node, hash}. --get ID writes the losing\ncontent to stdout.", stderr)
	cfgPath := fs.String("config", defaultConfig, "configuration file")
	jobName := fs.String("job", "", "job name (required)")
	asJSON := fs.Bool("json", false, "print JSON")
	get := fs.String("get", "", "write the losing content of conflict `ID` to stdout")
	if code, done := parse(fs, args); done {
		return code
	}
	cfg, ok := loadJobConfig("conflicts", *cfgPath, *jobName, stderr)
	if !ok {
		return 1
	}
	st, err := store.OpenReadOnly(filepath.Join(cfg.Node.DataDir, "store"), slog.New(slog.DiscardHandler))
	if err != nil {
		fmt.Fprintln(stderr, "pbxsync conflicts:", err)
		return 1
	}
	defer st.Close()
	cs, err := st.Conflicts(*jobName)
	if err != nil {
		fmt.Fprintln(stderr, "pbxsync conflicts:", err)
		return 1
	}
	if *get != "" {
		for _, c := range cs {
			if c.ID != *get {
				continue
			}
			switch {
			case len(c.Row) > 0:
				fmt.Fprintln(stdout, string(c.Row))
				return 0
			case c.Loser.Deleted:
				fmt.Fprintf(stderr, "pbxsync conflicts: conflict %s of %s: the losing version is a deletion on %s; it has no content\n", c.ID, c.Path, c.Loser.Node)
				return 1
			}
			if _, err := st.CopyTo(ctx, c.Loser.Hash, stdout); err != nil {
				fmt.Fprintf(stderr, "pbxsync conflicts: conflict %s of %s: %v\n", c.ID, c.Path, err)
				return 1
			}
			return 0
		}
		fmt.Fprintf(stderr, "pbxsync conflicts: job %q has no conflict %q on this node (list them with --json)\n", *jobName, *get)
		return 1
	}
	if *asJSON {
		out, err := history.Conflicts(st, *jobName, true)
		if err != nil {
			fmt.Fprintln(stderr, "pbxsync conflicts:", err)
			return 1
		}
		b, _ := json.MarshalIndent(out, "", "  ")
		fmt.Fprintln(stdout, string(b))
		return 0
	}
	tw := tabwriter.NewWriter(stdout, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tTIME\tPATH\tWINNER\tLOSER")
	for _, c := range cs {
		loser := c.Loser.Node
		if c.Loser.Deleted {
			loser += " (delete)"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s (gen %d)\t%s\n", c.ID, c.Time.Local().Format(time.DateTime), c.Path, c.Winner.Node, c.Winner.Generation, loser)
	}
	tw.Flush()
	return 0
}
