package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"

	"pbxsync/internal/index"
	"pbxsync/internal/store"
	"pbxsync/syncer"
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
	var idx [2]index.Index
	for i, n := range gens {
		g, err := st.Generation(*jobName, n)
		if err != nil {
			fmt.Fprintf(stderr, "pbxsync diff: generation %d of job %s: %v\n", n, *jobName, err)
			return 1
		}
		idx[i] = g.Index
	}
	changed := syncer.Changed(idx[0], idx[1])
	if len(changed) == 0 {
		fmt.Fprintf(stdout, "generations %d and %d of job %s hold the same tree\n", gens[0], gens[1], *jobName)
		return 0
	}
	for _, p := range changed {
		a, inA := idx[0][p]
		b, inB := idx[1][p]
		switch {
		case !inA:
			fmt.Fprintf(stdout, "added     %s (%s)\n", p, describe(b))
		case !inB:
			fmt.Fprintf(stdout, "removed   %s (%s)\n", p, describe(a))
		case a.Kind == b.Kind && a.Hash == b.Hash:
			fmt.Fprintf(stdout, "mode      %s %04o -> %04o\n", p, index.UnixMode(a.Mode), index.UnixMode(b.Mode))
		default:
			fmt.Fprintf(stdout, "modified  %s (%s -> %s)\n", p, describe(a), describe(b))
		}
		if *content && (inA || inB) {
			if err := unifiedDiff(ctx, st, p, a, b, stdout); err != nil {
				fmt.Fprintf(stderr, "pbxsync diff: %s: %v\n", p, err)
				return 1
			}
		}
	}
	return 0
}

func describe(it index.Item) string {
	if it.Kind == index.KindDir {
		return fmt.Sprintf("dir %04o", index.UnixMode(it.Mode))
	}
	return fmt.Sprintf("%d bytes %04o %s", it.Size, index.UnixMode(it.Mode), it.Hash.Short())
}

// unifiedDiff writes `diff -u` of two stored versions of p (either may be
// absent) to w; binary files are reported as such by diff.
func unifiedDiff(ctx context.Context, st *store.Store, p string, a, b index.Item, w io.Writer) error {
	dir, err := os.MkdirTemp("", "pbxsync-diff-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	write := func(name string, it index.Item) (string, error) {
		path := filepath.Join(dir, name)
		f, err := os.Create(path)
		if err != nil {
			return "", err
		}
		defer f.Close()
		if it.Kind == index.KindFile && !it.Hash.IsZero() || it.Kind == index.KindFile && it.Size == 0 {
			if err := st.CopyTo(ctx, it.Hash, f); err != nil {
				return "", err
			}
		}
		return path, nil
	}
	pa, err := write("a", a)
	if err != nil {
		return err
	}
	pb, err := write("b", b)
	if err != nil {
		return err
	}
	cmd := exec.CommandContext(ctx, "diff", "-u", "--label", "a/"+p, "--label", "b/"+p, pa, pb)
	cmd.Stdout = w
	if err := cmd.Run(); err != nil {
		if ee, ok := err.(*exec.ExitError); ok && ee.ExitCode() == 1 {
			return nil // differences found
		}
		return err
	}
	return nil
}
