//go:build linux

package beneath

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"
)

// ErrSymlink is wrapped by every error about a symlink met on the way.
var ErrSymlink = errors.New("is a symlink")

// ErrNotRegular is wrapped by OpenFile's error for anything but a
// regular file (a directory, FIFO, device or socket swapped in).
var ErrNotRegular = errors.New("not a regular file")

// elems splits the slash-separated relative path rel, refusing "", "."
// and ".." elements and absolute paths.
func elems(rel string) ([]string, error) {
	if rel == "" {
		return nil, nil
	}
	if strings.HasPrefix(rel, "/") {
		return nil, fmt.Errorf("%q is absolute", rel)
	}
	out := strings.Split(rel, "/")
	for _, e := range out {
		if e == "" || e == "." || e == ".." {
			return nil, fmt.Errorf("%q has a %q element", rel, e)
		}
	}
	return out, nil
}

// pathErr names the whole path and turns ELOOP (O_NOFOLLOW met a link)
// and ENOTDIR on a link into ErrSymlink.
func pathErr(op, root, rel string, err error) error {
	if errors.Is(err, unix.ELOOP) {
		err = fmt.Errorf("%w: %w", ErrSymlink, err)
	}
	return &fs.PathError{Op: op, Path: filepath.Join(root, filepath.FromSlash(rel)), Err: err}
}

// openDirFd opens the directory rel below root ("" is root itself) and
// returns its descriptor.
func openDirFd(root, rel string) (int, error) {
	es, err := elems(rel)
	if err != nil {
		return -1, &fs.PathError{Op: "open", Path: rel, Err: err}
	}
	fd, err := unix.Open(root, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return -1, &fs.PathError{Op: "open", Path: root, Err: err}
	}
	for i, e := range es {
		next, err := unix.Openat(fd, e, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
		unix.Close(fd)
		if err != nil {
			if errors.Is(err, unix.ENOTDIR) {
				if fi, serr := os.Lstat(filepath.Join(root, filepath.FromSlash(strings.Join(es[:i+1], "/")))); serr == nil && fi.Mode()&fs.ModeSymlink != 0 {
					err = unix.ELOOP
				}
			}
			return -1, pathErr("open", root, strings.Join(es[:i+1], "/"), err)
		}
		fd = next
	}
	return fd, nil
}

// OpenDir opens the directory rel below root ("" is root itself).
func OpenDir(root, rel string) (*os.File, error) {
	fd, err := openDirFd(root, rel)
	if err != nil {
		return nil, err
	}
	return os.NewFile(uintptr(fd), filepath.Join(root, filepath.FromSlash(rel))), nil
}

// Parent opens the parent directory of rel below root and returns it with
// rel's last element.
func Parent(root, rel string) (*os.File, string, error) {
	dir, base := "", rel
	if i := strings.LastIndexByte(rel, '/'); i >= 0 {
		dir, base = rel[:i], rel[i+1:]
	}
	if _, err := elems(rel); err != nil || rel == "" {
		if err == nil {
			err = errors.New("empty path")
		}
		return nil, "", &fs.PathError{Op: "open", Path: rel, Err: err}
	}
	d, err := OpenDir(root, dir)
	if err != nil {
		return nil, "", err
	}
	return d, base, nil
}

// OpenFile opens the regular file rel below root with flag (O_RDONLY, or
// O_WRONLY for a file that exists); O_NOFOLLOW and O_NONBLOCK (a FIFO
// swapped in never blocks) are added. Anything but a regular file is
// refused.
func OpenFile(root, rel string, flag int) (*os.File, error) {
	d, base, err := Parent(root, rel)
	if err != nil {
		return nil, err
	}
	defer d.Close()
	fd, err := unix.Openat(int(d.Fd()), base, flag|unix.O_NOFOLLOW|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, pathErr("open", root, rel, err)
	}
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		unix.Close(fd)
		return nil, pathErr("stat", root, rel, err)
	}
	if st.Mode&unix.S_IFMT != unix.S_IFREG {
		unix.Close(fd)
		return nil, pathErr("open", root, rel, ErrNotRegular)
	}
	// back to blocking reads (a regular file ignores O_NONBLOCK anyway)
	if err := unix.SetNonblock(fd, false); err != nil {
		unix.Close(fd)
		return nil, pathErr("open", root, rel, err)
	}
	return os.NewFile(uintptr(fd), filepath.Join(root, filepath.FromSlash(rel))), nil
}

// ReadDir lists the directory rel below root.
func ReadDir(root, rel string) ([]os.DirEntry, error) {
	d, err := OpenDir(root, rel)
	if err != nil {
		return nil, err
	}
	defer d.Close()
	ents, err := d.ReadDir(-1)
	if err != nil {
		return nil, err
	}
	return ents, nil
}

// Lstat returns the type and permission bits of dir/base without
// following it.
func Lstat(dir *os.File, base string) (fs.FileMode, error) {
	var st unix.Stat_t
	if err := unix.Fstatat(int(dir.Fd()), base, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return 0, &fs.PathError{Op: "lstat", Path: filepath.Join(dir.Name(), base), Err: err}
	}
	m := fs.FileMode(st.Mode & 0o777)
	switch st.Mode & unix.S_IFMT {
	case unix.S_IFDIR:
		m |= fs.ModeDir
	case unix.S_IFLNK:
		m |= fs.ModeSymlink
	case unix.S_IFREG:
	default:
		m |= fs.ModeIrregular
	}
	return m, nil
}

// Chmod sets the mode (Unix bits, 0o7777) of the file or directory at the
// last element of dir/base, refusing a symlink: it opens the element with
// O_PATH|O_NOFOLLOW and changes the inode it got through /proc/self/fd,
// the way glibc's fchmodat(AT_SYMLINK_NOFOLLOW) does.
func Chmod(dir *os.File, base string, mode uint32) error {
	fd, err := unix.Openat(int(dir.Fd()), base, unix.O_PATH|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return &fs.PathError{Op: "chmod", Path: filepath.Join(dir.Name(), base), Err: err}
	}
	defer unix.Close(fd)
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return &fs.PathError{Op: "chmod", Path: filepath.Join(dir.Name(), base), Err: err}
	}
	if st.Mode&unix.S_IFMT == unix.S_IFLNK {
		return &fs.PathError{Op: "chmod", Path: filepath.Join(dir.Name(), base), Err: ErrSymlink}
	}
	if err := unix.Fchmodat(unix.AT_FDCWD, fmt.Sprintf("/proc/self/fd/%d", fd), mode&0o7777, 0); err != nil {
		return &fs.PathError{Op: "chmod", Path: filepath.Join(dir.Name(), base), Err: err}
	}
	return nil
}

// Chtimes sets the access and modification time of dir/base (Unix
// nanoseconds) without following a symlink.
func Chtimes(dir *os.File, base string, mtime int64) error {
	ts := []unix.Timespec{unix.NsecToTimespec(mtime), unix.NsecToTimespec(mtime)}
	if err := unix.UtimesNanoAt(int(dir.Fd()), base, ts, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return &fs.PathError{Op: "chtimes", Path: filepath.Join(dir.Name(), base), Err: err}
	}
	return nil
}

// Rename renames the file at the absolute path from to dir/base (a
// symlink at dir/base is replaced, never followed).
func Rename(from string, dir *os.File, base string) error {
	if err := unix.Renameat(unix.AT_FDCWD, from, int(dir.Fd()), base); err != nil {
		return &os.LinkError{Op: "rename", Old: from, New: filepath.Join(dir.Name(), base), Err: err}
	}
	return nil
}

// RenameNoReplace renames the file at the absolute path from to dir/base
// unless something is there (renameat2 RENAME_NOREPLACE): the check and
// the rename are one step. It fails with an error wrapping fs.ErrExist
// when dir/base exists, and errors.ErrUnsupported when the file system
// has no such rename.
func RenameNoReplace(from string, dir *os.File, base string) error {
	return rename2(from, dir, base, unix.RENAME_NOREPLACE)
}

// Exchange swaps the file at the absolute path from and dir/base in one
// step (renameat2 RENAME_EXCHANGE): afterwards from holds what was at
// dir/base and dir/base what was at from. Both must exist. It fails with
// errors.ErrUnsupported when the file system has no such rename.
func Exchange(from string, dir *os.File, base string) error {
	return rename2(from, dir, base, unix.RENAME_EXCHANGE)
}

// MoveOut renames dir/base to the absolute path to, which must not
// exist (RENAME_NOREPLACE). It fails with errors.ErrUnsupported when the
// file system has no such rename.
func MoveOut(dir *os.File, base, to string) error {
	if err := unix.Renameat2(int(dir.Fd()), base, unix.AT_FDCWD, to, unix.RENAME_NOREPLACE); err != nil {
		return &os.LinkError{Op: "rename", Old: filepath.Join(dir.Name(), base), New: to, Err: rename2Err(err)}
	}
	return nil
}

// rename2 renames the absolute path from to dir/base with renameat2's
// flags.
func rename2(from string, dir *os.File, base string, flags uint) error {
	if err := unix.Renameat2(unix.AT_FDCWD, from, int(dir.Fd()), base, flags); err != nil {
		return &os.LinkError{Op: "rename", Old: from, New: filepath.Join(dir.Name(), base), Err: rename2Err(err)}
	}
	return nil
}

// rename2Err marks the errors of a kernel or file system without
// renameat2's flags as errors.ErrUnsupported.
func rename2Err(err error) error {
	if errors.Is(err, unix.EINVAL) || errors.Is(err, unix.ENOSYS) {
		return fmt.Errorf("%w: %w", errors.ErrUnsupported, err)
	}
	return err
}

// Remove removes the file or symlink dir/base.
func Remove(dir *os.File, base string) error {
	if err := unix.Unlinkat(int(dir.Fd()), base, 0); err != nil {
		return &fs.PathError{Op: "remove", Path: filepath.Join(dir.Name(), base), Err: err}
	}
	return nil
}

// Rmdir removes the empty directory dir/base.
func Rmdir(dir *os.File, base string) error {
	if err := unix.Unlinkat(int(dir.Fd()), base, unix.AT_REMOVEDIR); err != nil {
		return &fs.PathError{Op: "rmdir", Path: filepath.Join(dir.Name(), base), Err: err}
	}
	return nil
}

// Mkdir creates the directory dir/base with perm.
func Mkdir(dir *os.File, base string, perm uint32) error {
	if err := unix.Mkdirat(int(dir.Fd()), base, perm); err != nil {
		return &fs.PathError{Op: "mkdir", Path: filepath.Join(dir.Name(), base), Err: err}
	}
	return nil
}

// Lchown sets the owner of dir/base without following it.
func Lchown(dir *os.File, base string, uid, gid int) error {
	if err := unix.Fchownat(int(dir.Fd()), base, uid, gid, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return &fs.PathError{Op: "lchown", Path: filepath.Join(dir.Name(), base), Err: err}
	}
	return nil
}

// Symlink creates dir/base as a symlink to target (which is not followed
// or checked: it is what a link held before).
func Symlink(target string, dir *os.File, base string) error {
	if err := unix.Symlinkat(target, int(dir.Fd()), base); err != nil {
		return &fs.PathError{Op: "symlink", Path: filepath.Join(dir.Name(), base), Err: err}
	}
	return nil
}

// Readlink returns the target of the symlink dir/base.
func Readlink(dir *os.File, base string) (string, error) {
	buf := make([]byte, 4096)
	n, err := unix.Readlinkat(int(dir.Fd()), base, buf)
	if err != nil {
		return "", &fs.PathError{Op: "readlink", Path: filepath.Join(dir.Name(), base), Err: err}
	}
	return string(buf[:n]), nil
}
