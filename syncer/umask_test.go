package syncer

import (
	"context"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"pbxsync/internal/index"
)

func TestParseUmask(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		status string
		want   fs.FileMode
		ok     bool
	}{
		{"Name:\tpbxsync\nUmask:\t0022\nState:\tS (sleeping)\n", 0o022, true},
		{"Umask:\t0077\n", 0o077, true},
		{"Umask:\t0000", 0, true},
		{"Name:\tpbxsync\nState:\tS (sleeping)\n", 0, false}, // a kernel before 4.7
		{"Umask:\t0999\n", 0, false},
		{"Umask:\t01000\n", 0, false},
		{"Umask:\n", 0, false},
		{"", 0, false},
	} {
		got, ok := parseUmask([]byte(c.status))
		if got != c.want || ok != c.ok {
			t.Errorf("parseUmask(%q) = %#o, %v; want %#o, %v", c.status, got, ok, c.want, c.ok)
		}
	}
}

// TestProcessUmaskIsTheShells: the mask read from /proc is the one a
// child process inherits and prints.
func TestProcessUmaskIsTheShells(t *testing.T) {
	t.Parallel()
	if runtime.GOOS != "linux" {
		t.Skip("processUmask reads /proc/self/status, Linux only")
	}
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

func TestStagingPerm(t *testing.T) {
	t.Parallel()
	file := func(mode fs.FileMode) index.Item {
		return index.Item{Path: "f", Kind: index.KindFile, Mode: mode, MTime: 1}
	}
	for _, c := range []struct {
		name      string
		umask     fs.FileMode
		known     bool
		it        index.Item
		want      fs.FileMode
		wantExact bool
	}{
		{"umask unknown", 0, false, file(0o644), 0o600, false},
		{"kept whole by 022", 0o022, true, file(0o644), 0o644, true},
		{"executable", 0o022, true, file(0o755), 0o755, true},
		{"private", 0o077, true, file(0o600), 0o600, true},
		{"group write cut by 022", 0o022, true, file(0o664), 0o600, false},
		{"umask 0", 0, true, file(0o666), 0o666, true},
		{"setuid waits for the apply", 0o022, true, file(fs.ModeSetuid | 0o755), 0o600, false},
		{"sticky waits for the apply", 0o022, true, file(fs.ModeSticky | 0o644), 0o600, false},
		{"no mode known", 0o022, true, index.Item{Path: "f", Kind: index.KindFile}, 0o600, false},
	} {
		a := &Applier{Umask: c.umask, UmaskKnown: c.known}
		perm, exact := a.stagingPerm(c.it)
		if perm != c.want || exact != c.wantExact {
			t.Errorf("%s: stagingPerm(mode %v) = %#o, %v; want %#o, %v", c.name, c.it.Mode, perm, exact, c.want, c.wantExact)
		}
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
