package syncer

import (
	"os"
	"path/filepath"
	"testing"

	"pbxsync/internal/beneath"
)

// TestParentDirs: the parent directories a pass keeps open answer every
// path as beneath.Parent does (the file at its last element, a symlink
// seen as one, a directory that is missing or a symlink refused), for
// paths in path order where siblings share a directory, and after a
// directory was passed and left.
func TestParentDirs(t *testing.T) {
	root := t.TempDir()
	for _, d := range []string{"a", "a/b", "real"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for _, f := range []string{"a/f", "a/b/g", "top"} {
		if err := os.WriteFile(filepath.Join(root, f), []byte("x"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for l, to := range map[string]string{"a/link": "f", "dirlink": "real", "a/b/link": "../f"} {
		if err := os.Symlink(to, filepath.Join(root, l)); err != nil {
			t.Fatal(err)
		}
	}
	paths := []string{
		"a", "a/b", "a/b/g", "a/b/link", "a/b/new", "a/f", "a/link", "a/new",
		"dirlink", "dirlink/x", "dirlink/y", // below a symlink: refused
		"missing/x", "missing/y", "missing/z/w", // a missing directory
		"a/again", "top", "new",
	}
	dirs := &parentDirs{root: root}
	defer dirs.close()
	for _, rel := range paths {
		wd, wb, werr := beneath.Parent(root, rel)
		gd, gb, gerr := dirs.open(rel)
		if (werr == nil) != (gerr == nil) || wb != gb && werr == nil {
			t.Fatalf("%s: parentDirs gave %q, %v; beneath.Parent %q, %v", rel, gb, gerr, wb, werr)
		}
		if werr != nil {
			continue
		}
		wm, wlerr := beneath.Lstat(wd, wb)
		gm, glerr := beneath.Lstat(gd, gb)
		_ = wd.Close()
		if wm != gm || (wlerr == nil) != (glerr == nil) {
			t.Errorf("%s: lstat through parentDirs %v, %v; through beneath.Parent %v, %v", rel, gm, glerr, wm, wlerr)
		}
	}
}
