//go:build !linux

package beneath

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"time"
)

// ErrSymlink is wrapped by every error about a symlink met on the way.
var ErrSymlink = errors.New("is a symlink")

// ErrNotRegular is wrapped by OpenFile's error for anything but a
// regular file (a directory, FIFO, device or socket swapped in).
var ErrNotRegular = errors.New("not a regular file")

// Elsewhere than Linux these follow the plain os calls, checking the last
// element only; pbxsync runs on Linux.

// OpenFile opens the regular file rel below root.
func OpenFile(root, rel string, flag int) (*os.File, error) {
	p := filepath.Join(root, filepath.FromSlash(rel))
	fi, err := os.Lstat(p)
	if err != nil {
		return nil, err
	}
	if !fi.Mode().IsRegular() {
		return nil, &fs.PathError{Op: "open", Path: p, Err: ErrNotRegular}
	}
	return os.OpenFile(p, flag, 0)
}

// ReadDir lists the directory rel below root.
func ReadDir(root, rel string) ([]os.DirEntry, error) {
	return os.ReadDir(filepath.Join(root, filepath.FromSlash(rel)))
}

func join(dir *os.File, base string) string { return filepath.Join(dir.Name(), base) }

// OpenDir opens the directory rel below root.
func OpenDir(root, rel string) (*os.File, error) {
	return os.Open(filepath.Join(root, filepath.FromSlash(rel)))
}

// Parent opens the parent directory of rel below root.
func Parent(root, rel string) (*os.File, string, error) {
	p := filepath.Join(root, filepath.FromSlash(rel))
	d, err := os.Open(filepath.Dir(p))
	return d, filepath.Base(p), err
}

// Lstat returns the type and permission bits of dir/base.
func Lstat(dir *os.File, base string) (fs.FileMode, error) {
	fi, err := os.Lstat(join(dir, base))
	if err != nil {
		return 0, err
	}
	return fi.Mode(), nil
}

// Chmod sets the mode of dir/base.
func Chmod(dir *os.File, base string, mode uint32) error {
	m := fs.FileMode(mode & 0o777)
	if mode&0o4000 != 0 {
		m |= fs.ModeSetuid
	}
	if mode&0o2000 != 0 {
		m |= fs.ModeSetgid
	}
	if mode&0o1000 != 0 {
		m |= fs.ModeSticky
	}
	return os.Chmod(join(dir, base), m)
}

// Chtimes sets the times of dir/base.
func Chtimes(dir *os.File, base string, mtime int64) error {
	t := time.Unix(0, mtime)
	return os.Chtimes(join(dir, base), t, t)
}

// Rename renames from to dir/base.
func Rename(from string, dir *os.File, base string) error { return os.Rename(from, join(dir, base)) }

// RenameNoReplace is not atomic elsewhere than Linux: it fails with
// errors.ErrUnsupported.
func RenameNoReplace(from string, dir *os.File, base string) error { return errors.ErrUnsupported }

// Exchange is not available elsewhere than Linux: it fails with
// errors.ErrUnsupported.
func Exchange(from string, dir *os.File, base string) error { return errors.ErrUnsupported }

// MoveOut renames dir/base to to, which must not exist (checked first:
// not atomic elsewhere than Linux).
func MoveOut(dir *os.File, base, to string) error {
	if _, err := os.Lstat(to); err == nil {
		return &os.LinkError{Op: "rename", Old: join(dir, base), New: to, Err: fs.ErrExist}
	}
	return os.Rename(join(dir, base), to)
}

// Remove removes the file dir/base.
func Remove(dir *os.File, base string) error { return os.Remove(join(dir, base)) }

// Rmdir removes the empty directory dir/base.
func Rmdir(dir *os.File, base string) error { return os.Remove(join(dir, base)) }

// Mkdir creates the directory dir/base.
func Mkdir(dir *os.File, base string, perm uint32) error {
	return os.Mkdir(join(dir, base), fs.FileMode(perm&0o777))
}

// Lchown sets the owner of dir/base.
func Lchown(dir *os.File, base string, uid, gid int) error {
	return os.Lchown(join(dir, base), uid, gid)
}

// Symlink creates dir/base as a symlink to target.
func Symlink(target string, dir *os.File, base string) error {
	return os.Symlink(target, join(dir, base))
}

// Readlink returns the target of the symlink dir/base.
func Readlink(dir *os.File, base string) (string, error) { return os.Readlink(join(dir, base)) }
