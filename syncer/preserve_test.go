package syncer

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"pbxsync/internal/config"
)

// TestPreserveKeepsSymlinksBesideNewDirectories: preserve, which skips
// the paths below a directory it found absent, still keeps every local
// symlink that a new path replaces: in a directory beside an absent one
// whose name it begins with ("gone" and "gonex"), below an existing
// directory and at the top.
func TestPreserveKeepsSymlinksBesideNewDirectories(t *testing.T) {
	t.Parallel()
	ap := newApplier(t)
	for _, d := range []string{"gonex", "d/e"} {
		if err := os.MkdirAll(filepath.Join(ap.Root, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for _, l := range []string{"gonex/link", "d/e/link", "top"} {
		if err := os.Symlink("/elsewhere", filepath.Join(ap.Root, filepath.FromSlash(l))); err != nil {
			t.Fatal(err)
		}
	}
	j := &job{a: &Agent{store: ap.Store}, cfg: config.Job{Name: "conf", Path: ap.Root}, log: slog.New(slog.DiscardHandler)}
	file := func(p string) Op {
		return Op{Kind: OpWrite, Path: p}
	}
	dir := func(p string) Op {
		return Op{Kind: OpMkdir, Path: p}
	}
	ops := []Op{dir("gone"), dir("gone/sub"), file("gone/a"), file("gone/sub/b"), file("gonex/link"),
		file("new/x"), file("new/y"), file("d/e/link"), file("d/e/f"), file("top")}
	links, err := j.preserve(context.Background(), ops)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, l := range links {
		got = append(got, l.Path)
		if l.Target != "/elsewhere" {
			t.Errorf("link %s kept with target %q", l.Path, l.Target)
		}
	}
	slices.Sort(got)
	if want := []string{"d/e/link", "gonex/link", "top"}; !slices.Equal(got, want) {
		t.Errorf("kept links %q, want %q", got, want)
	}
	absent := map[string]bool{"gone": true}
	if underAbsent("gonex/link", absent) || !underAbsent("gone/sub/b", absent) || underAbsent("gone", absent) {
		t.Error("underAbsent takes a name for a directory above it, or misses one")
	}
}
