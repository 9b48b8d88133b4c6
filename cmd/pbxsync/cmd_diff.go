package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"strconv"

	"pbxsync/internal/history"
	"pbxsync/internal/store"
)

func cmdDiff(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := newFlags("diff", "[--config FILE] --job JOB [--content] N M",
		"Shows what changed between generations N and M of a job, from the local store:\none line per path (added, removed, modified, mode). With --content, text files\nare compared line by line (diff -u).", stderr)
	cfgPath := fs.String("config", defaultConfig, "configuration file")
	jobName := fs.String("job", "", "job name (required)")
	content := fs.Bool("content", false, "show a unified diff of changed text files")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if fs.NArg() != 2 {
		fmt.Fprintln(stderr, "pbxsync diff: want two generation numbers")
		fs.Usage()
		return 2
	}
	var gens [2]uint64
	for i := range gens {
		n, err := strconv.ParseUint(fs.Arg(i), 10, 64)
		if err != nil {
			fmt.Fprintf(stderr, "pbxsync diff: %q is not a generation number\n", fs.Arg(i))
			return 2
		}
		gens[i] = n
	}
	cfg, ok := loadJobConfig("diff", *cfgPath, *jobName, stderr)
	if !ok {
		return 1
	}
	st, err := store.OpenReadOnly(filepath.Join(cfg.Node.DataDir, "store"), slog.New(slog.DiscardHandler))
	if err != nil {
		fmt.Fprintln(stderr, "pbxsync diff:", err)
		return 1
	}
	defer st.Close()
	changes, err := history.Compare(ctx, st, *jobName, gens[0], gens[1], history.Options{Content: *content})
	if err != nil {
		fmt.Fprintln(stderr, "pbxsync diff:", err)
		return 1
	}
	if len(changes) == 0 {
		fmt.Fprintf(stdout, "generations %d and %d of job %s hold the same tree\n", gens[0], gens[1], *jobName)
		return 0
	}
	for _, c := range changes {
		switch c.Kind {
		case history.Added:
			fmt.Fprintf(stdout, "added     %s (%s)\n", c.Path, c.To)
		case history.Removed:
			fmt.Fprintf(stdout, "removed   %s (%s)\n", c.Path, c.From)
		case history.ModeOnly:
			fmt.Fprintf(stdout, "mode      %s %s -> %s\n", c.Path, c.From, c.To)
		default:
			fmt.Fprintf(stdout, "modified  %s (%s -> %s)\n", c.Path, c.From, c.To)
		}
		fmt.Fprint(stdout, c.Diff)
	}
	return 0
}
