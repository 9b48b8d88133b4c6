//go:build linux

package beneath

import (
	"errors"
	"io"
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
