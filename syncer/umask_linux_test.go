package syncer

import (
	"context"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"pbxsync/internal/index"
)

// TestProcessUmaskIsTheShells: the mask read from /proc is the one a
// child process inherits and prints.
func TestProcessUmaskIsTheShells(t *testing.T) {
	t.Parallel()
	got, ok := processUmask()
	if !ok {
		t.Fatal("processUmask found no Umask line in /proc/self/status")
	}
	out, err := exec.Command("sh", "-c", "umask").Output()
	if err != nil {
		t.Fatal(err)
	}
	want, err := strconv.ParseUint(strings.TrimSpace(string(out)), 8, 32)
	if err != nil {
		t.Fatalf("sh printed umask %q: %v", out, err)
	}
	if got != fs.FileMode(want) {
		t.Errorf("processUmask = %#o, sh says %#o", got, want)
	}
}

// TestFetchedFilesGetTheirModes: a fetched file whose mode the umask leaves
// whole is created with it (no chmod after its content), one whose mode
// the umask cuts is given it by chmod; both are applied with their modes
// and mtimes. Not parallel: it sets the process's umask (the parallel
// tests wait until it is done).
func TestFetchedFilesGetTheirModes(t *testing.T) {
	old := syscall.Umask(0o022)
	defer syscall.Umask(old)
	a := newApplier(t)
	a.Umask, a.UmaskKnown = processUmask()
	if !a.UmaskKnown || a.Umask != 0o022 {
		t.Fatalf("processUmask = %#o, %v after umask(022)", a.Umask, a.UmaskKnown)
	}
	files := []struct {
		path, content string
		mode          uint32
		created       fs.FileMode // the staging file's mode as created
	}{
		{"etc/plain.conf", "kept whole by the umask", 0o644, 0o644},
		{"etc/shared.conf", "group-writable, which the umask cuts", 0o664, 0o600},
		{"bin/tool", "executable", 0o755, 0o755},
	}
	want := index.Of(index.Item{Path: "etc", Kind: index.KindDir, Mode: 0o755}, index.Item{Path: "bin", Kind: index.KindDir, Mode: 0o755})
	for _, c := range files {
		it := a.put(t, c.path, c.content, c.mode)
		want.Set(it)
		perm, exact := a.stagingPerm(it)
		f, name, err := a.newStagingFile(perm)
		if err != nil {
			t.Fatal(err)
		}
		if fi, err := f.Stat(); err != nil || fi.Mode().Perm() != c.created {
			t.Errorf("%s (mode %#o) was created with %v (%v), want %v", c.path, c.mode, fi.Mode().Perm(), err, c.created)
		}
		if _, err := f.WriteString(c.content); err != nil {
			t.Fatal(err)
		}
		m := setStagedMeta(f, it, exact)
		f.Close()
		if !m.set || m.mode != it.Mode {
			t.Errorf("%s: staged meta %+v, want mode %v set", c.path, m, it.Mode)
		}
		a.prestage(it.Hash, name, m)
	}
	if err := a.Apply(context.Background(), 1, Plan(index.Index{}, want), IndexLookup(want)); err != nil {
		t.Fatal(err)
	}
	for _, c := range files {
		it, _ := want.Get(c.path)
		fi, err := os.Lstat(filepath.Join(a.Root, c.path))
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode() != it.Mode || fi.ModTime().UnixNano() != it.MTime {
			t.Errorf("%s applied with mode %v mtime %d, want %v and %d", c.path, fi.Mode(), fi.ModTime().UnixNano(), it.Mode, it.MTime)
		}
	}
}
