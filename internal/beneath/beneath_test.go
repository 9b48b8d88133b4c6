//go:build linux

package beneath

import (
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
	"testing"
)

func TestNothingFollowsASymlink(t *testing.T) {
	base := t.TempDir()
	root := filepath.Join(base, "root")
	outside := filepath.Join(base, "outside")
	for _, d := range []string{filepath.Join(root, "real"), outside} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	secret := filepath.Join(outside, "secret")
	if err := os.WriteFile(secret, []byte("secret"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, "real", "f"), []byte("inside"), 0o644); err != nil {
		t.Fatal(err)
	}
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.Symlink(outside, filepath.Join(root, "dirlink")))
	must(os.Symlink(secret, filepath.Join(root, "filelink")))
	must(syscall.Mkfifo(filepath.Join(root, "fifo"), 0o644))

	f, err := OpenFile(root, "real/f", os.O_RDONLY)
	must(err)
	b, _ := io.ReadAll(f)
	f.Close()
	if string(b) != "inside" {
		t.Fatalf("read %q", b)
	}
	for _, rel := range []string{"filelink", "dirlink/secret"} {
		if f, err := OpenFile(root, rel, os.O_RDONLY); err == nil || !errors.Is(err, ErrSymlink) {
			f.Close()
			t.Errorf("OpenFile(%s): %v, want ErrSymlink", rel, err)
		}
	}
	if _, err := OpenFile(root, "fifo", os.O_RDONLY); !errors.Is(err, ErrNotRegular) {
		t.Errorf("OpenFile(fifo): %v, want ErrNotRegular (and no block)", err)
	}
	if _, err := ReadDir(root, "dirlink"); !errors.Is(err, ErrSymlink) {
		t.Errorf("ReadDir(dirlink): %v, want ErrSymlink", err)
	}
	if _, _, err := Parent(root, "dirlink/new"); !errors.Is(err, ErrSymlink) {
		t.Errorf("Parent(dirlink/new): %v, want ErrSymlink", err)
	}
	if _, _, err := Parent(root, "../x"); err == nil {
		t.Error("Parent(../x) accepted")
	}
	d, base, err := Parent(root, "filelink")
	must(err)
	defer d.Close()
	if err := Chmod(d, base, 0o777); !errors.Is(err, ErrSymlink) {
		t.Errorf("Chmod(filelink): %v, want ErrSymlink", err)
	}
	if err := Chtimes(d, base, 12345); err != nil {
		t.Errorf("Chtimes(filelink) sets the link's own times: %v", err)
	}
	fi, err := os.Stat(secret)
	must(err)
	if fi.Mode().Perm() != 0o600 || fi.ModTime().UnixNano() == 12345 {
		t.Fatalf("the file outside changed: %v %v", fi.Mode(), fi.ModTime())
	}
	if m, err := Lstat(d, base); err != nil || m&os.ModeSymlink == 0 {
		t.Errorf("Lstat(filelink) = %v, %v", m, err)
	}
	if target, err := Readlink(d, base); err != nil || target != secret {
		t.Errorf("Readlink = %q, %v", target, err)
	}
	must(Chmod(d, "fifo", 0o4600))
	fi, err = os.Lstat(filepath.Join(root, "fifo"))
	must(err)
	if fi.Mode()&os.ModeSetuid == 0 || fi.Mode().Perm() != 0o600 {
		t.Errorf("Chmod(fifo, 04600) gave %v", fi.Mode())
	}
}

// TestRenameFlags: RenameNoReplace refuses a name that exists (fs.ErrExist)
// and leaves both files; Exchange swaps two files in one step; MoveOut
// refuses a target that exists.
func TestRenameFlags(t *testing.T) {
	base := t.TempDir()
	root, stage := filepath.Join(base, "root"), filepath.Join(base, "stage")
	for _, d := range []string{root, stage} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	write := func(p, s string) {
		t.Helper()
		if err := os.WriteFile(p, []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	read := func(p string) string {
		b, err := os.ReadFile(p)
		if err != nil {
			return "<" + err.Error() + ">"
		}
		return string(b)
	}
	dir, err := OpenDir(root, "")
	if err != nil {
		t.Fatal(err)
	}
	defer dir.Close()
	staged, there := filepath.Join(stage, "s"), filepath.Join(root, "f")
	write(staged, "new")
	write(there, "local")
	if err := RenameNoReplace(staged, dir, "f"); !errors.Is(err, fs.ErrExist) {
		t.Fatalf("RenameNoReplace over a file: %v, want ErrExist", err)
	}
	if read(staged) != "new" || read(there) != "local" {
		t.Fatalf("after a refused RenameNoReplace: staged %q, f %q", read(staged), read(there))
	}
	if err := Exchange(staged, dir, "f"); err != nil {
		t.Fatal(err)
	}
	if read(staged) != "local" || read(there) != "new" {
		t.Fatalf("after Exchange: staged %q, f %q", read(staged), read(there))
	}
	if err := MoveOut(dir, "f", staged); !errors.Is(err, fs.ErrExist) {
		t.Fatalf("MoveOut onto a file: %v, want ErrExist", err)
	}
	os.Remove(staged)
	if err := MoveOut(dir, "f", staged); err != nil {
		t.Fatal(err)
	}
	if err := RenameNoReplace(staged, dir, "g"); err != nil {
		t.Fatal(err)
	}
	if read(filepath.Join(root, "g")) != "new" {
		t.Fatalf("g holds %q", read(filepath.Join(root, "g")))
	}
	if err := Exchange(staged, dir, "g"); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("Exchange with nothing at the staged name: %v, want ErrNotExist", err)
	}
}
