package history

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"pbxsync/internal/index"
	"pbxsync/syncer"
)

// Kinds of Change.
const (
	Added    = "added"
	Removed  = "removed"
	Modified = "modified"
	ModeOnly = "mode" // same content, other permissions
)

// Change is one path that differs between two generations.
type Change struct {
	Path string `json:"path"`
	Kind string `json:"kind"`           // added, removed, modified, mode
	From string `json:"from,omitempty"` // what it was ("12 bytes 0644 ab12cd34", "dir 0755"); empty when added
	To   string `json:"to,omitempty"`   // what it became; empty when removed
	// Diff is the unified diff (diff -u) of the two contents, when asked
	// for and not Skipped.
	Diff string `json:"diff,omitempty"`
	// Skipped says why no Diff is given although one was asked for (a
	// file larger than Options.MaxBytes, past Options.MaxFiles).
	Skipped string `json:"skipped,omitempty"`
}

// Options says how much content Compare diffs.
type Options struct {
	Content  bool  // diff the content of changed files (diff -u)
	MaxBytes int64 // per version of a file; 0 = no bound
	MaxFiles int   // files diffed at most; 0 = no bound
}

// Compare returns what changed from generation a to generation b of job,
// sorted by path, with unified diffs of changed files when opts.Content.
func Compare(ctx context.Context, st Reader, job string, a, b uint64, opts Options) ([]Change, error) {
	var idx [2]index.Index
	for i, n := range []uint64{a, b} {
		g, err := st.Generation(job, n)
		if err != nil {
			return nil, fmt.Errorf("generation %d of job %s: %w", n, job, err)
		}
		idx[i] = g.Index
	}
	paths := syncer.Changed(idx[0], idx[1])
	out := make([]Change, 0, len(paths))
	diffed := 0
	for _, p := range paths {
		x, inA := idx[0].Get(p)
		y, inB := idx[1].Get(p)
		c := Change{Path: p}
		switch {
		case !inA:
			c.Kind, c.To = Added, Describe(y)
		case !inB:
			c.Kind, c.From = Removed, Describe(x)
		case x.Kind == y.Kind && x.Hash == y.Hash:
			c.Kind, c.From, c.To = ModeOnly, fmt.Sprintf("%04o", index.UnixMode(x.Mode)), fmt.Sprintf("%04o", index.UnixMode(y.Mode))
		default:
			c.Kind, c.From, c.To = Modified, Describe(x), Describe(y)
		}
		if opts.Content && c.Kind != ModeOnly && (x.Kind == index.KindFile || y.Kind == index.KindFile) {
			switch {
			case opts.MaxFiles > 0 && diffed >= opts.MaxFiles:
				c.Skipped = fmt.Sprintf("only the first %d files are diffed", opts.MaxFiles)
			case opts.MaxBytes > 0 && (x.Size > opts.MaxBytes || y.Size > opts.MaxBytes):
				c.Skipped = fmt.Sprintf("larger than %d bytes", opts.MaxBytes)
			default:
				d, err := unifiedDiff(ctx, st, p, x, y)
				if err != nil {
					return nil, fmt.Errorf("diff %s: %w", p, err)
				}
				c.Diff = d
				diffed++
			}
		}
		out = append(out, c)
	}
	return out, nil
}

// Describe is one item in a few words: "12 bytes 0644 ab12cd34" or
// "dir 0755".
func Describe(it index.Item) string {
	if it.Kind == index.KindDir {
		return fmt.Sprintf("dir %04o", index.UnixMode(it.Mode))
	}
	return fmt.Sprintf("%d bytes %04o %s", it.Size, index.UnixMode(it.Mode), it.Hash.Short())
}

// unifiedDiff returns `diff -u` of two stored versions of p (either may be
// absent: a zero Item); diff reports binary files as such.
func unifiedDiff(ctx context.Context, st Reader, p string, a, b index.Item) (string, error) {
	dir, err := os.MkdirTemp("", "pbxsync-diff-")
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(dir)
	write := func(name string, it index.Item) (string, error) {
		path := filepath.Join(dir, name)
		f, err := os.Create(path)
		if err != nil {
			return "", err
		}
		defer f.Close()
		if it.Kind == index.KindFile && (!it.Hash.IsZero() || it.Size == 0) {
			if _, err := st.CopyTo(ctx, it.Hash, f); err != nil {
				return "", err
			}
		}
		return path, f.Close()
	}
	pa, err := write("a", a)
	if err != nil {
		return "", err
	}
	pb, err := write("b", b)
	if err != nil {
		return "", err
	}
	var out strings.Builder
	cmd := exec.CommandContext(ctx, "diff", "-u", "--label", "a/"+p, "--label", "b/"+p, pa, pb)
	cmd.Stdout = &out
	if err := cmd.Run(); err != nil {
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() != 1 { // 1: differences found
			return "", err
		}
	}
	return out.String(), nil
}
