//go:build linux

package hostmon

import (
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"golang.org/x/sys/unix"

	"pbxsync/internal/beneath"
)

// fdDir is a scanDir that works through the directory's descriptor.
type fdDir struct {
	f    *os.File // keeps fd open
	fd   int
	path string // for errors
}

// openScanDir opens the directory rel below root (see beneath.OpenDir).
func openScanDir(root, rel string) (scanDir, error) {
	f, err := beneath.OpenDir(root, rel)
	if err != nil {
		return nil, err
	}
	return &fdDir{f: f, fd: int(f.Fd()), path: f.Name()}, nil
}

func (d *fdDir) list() ([]fs.DirEntry, error) { return d.f.ReadDir(-1) }

func (d *fdDir) close() { _ = d.f.Close() }

func (d *fdDir) lstat(name string) (fs.FileInfo, error) {
	fi := &statInfo{name: name}
	err := ignoringEINTR(func() error { return unix.Fstatat(d.fd, name, &fi.st, unix.AT_SYMLINK_NOFOLLOW) })
	if err != nil {
		return nil, &fs.PathError{Op: "lstat", Path: filepath.Join(d.path, name), Err: err}
	}
	return fi, nil
}

// LstatAt is os.Lstat of name in the directory dir, through dir's
// descriptor: no walk of dir's path (an apply reads back each file it
// renamed into a directory it holds open).
func LstatAt(dir *os.File, name string) (fs.FileInfo, error) {
	return (&fdDir{f: dir, fd: int(dir.Fd()), path: dir.Name()}).lstat(name)
}

func (d *fdDir) open(name string) (scanFile, error) {
	var fd int
	err := ignoringEINTR(func() error {
		var err error
		fd, err = unix.Openat(d.fd, name, unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
		return err
	})
	if err != nil {
		return nil, &fs.PathError{Op: "open", Path: filepath.Join(d.path, name), Err: err}
	}
	return &fdFile{fd: fd, path: filepath.Join(d.path, name)}, nil
}

// fdFile is a scanFile read through its descriptor (a regular file reads
// as if O_NONBLOCK were not set).
type fdFile struct {
	fd   int
	path string
}

func (f *fdFile) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	var n int
	err := ignoringEINTR(func() error {
		var err error
		n, err = unix.Read(f.fd, p)
		return err
	})
	switch {
	case err != nil:
		return 0, &fs.PathError{Op: "read", Path: f.path, Err: err}
	case n == 0:
		return 0, io.EOF
	}
	return n, nil
}

func (f *fdFile) stat() (fs.FileInfo, error) {
	fi := &statInfo{name: filepath.Base(f.path)}
	if err := ignoringEINTR(func() error { return unix.Fstat(f.fd, &fi.st) }); err != nil {
		return nil, &fs.PathError{Op: "stat", Path: f.path, Err: err}
	}
	return fi, nil
}

func (f *fdFile) rewind() error {
	if _, err := unix.Seek(f.fd, 0, io.SeekStart); err != nil {
		return &fs.PathError{Op: "seek", Path: f.path, Err: err}
	}
	return nil
}

func (f *fdFile) Close() error { return unix.Close(f.fd) }

// openForWriting asks for a read lease on the file, which the kernel
// grants only when no descriptor anywhere has it open for writing
// (fcntl(2), F_SETLEASE), and gives it back at once. It tells only when
// the lease is refused for that reason (EAGAIN); a file this process may
// not lease (another user's, without CAP_LEASE) or a file system without
// leases reads as not open for writing. A writer that opens the file in
// the microseconds the lease is held waits until it is given back (one
// that opens it with O_NONBLOCK is told EWOULDBLOCK).
func (f *fdFile) openForWriting() bool {
	_, err := unix.FcntlInt(uintptr(f.fd), unix.F_SETLEASE, unix.F_RDLCK)
	if err == nil {
		_, _ = unix.FcntlInt(uintptr(f.fd), unix.F_SETLEASE, unix.F_UNLCK)
		return false
	}
	return errors.Is(err, unix.EAGAIN)
}

func ignoringEINTR(fn func() error) error {
	for {
		if err := fn(); err != unix.EINTR {
			return err
		}
	}
}

// statInfo is the fs.FileInfo of a stat, as os.Lstat makes it (Sys
// returns the *unix.Stat_t, which sysStat reads).
type statInfo struct {
	name string
	st   unix.Stat_t
}

func (fi *statInfo) Name() string       { return fi.name }
func (fi *statInfo) Size() int64        { return fi.st.Size }
func (fi *statInfo) ModTime() time.Time { return time.Unix(fi.st.Mtim.Unix()) }
func (fi *statInfo) IsDir() bool        { return fi.Mode().IsDir() }
func (fi *statInfo) Sys() any           { return &fi.st }

func (fi *statInfo) Mode() fs.FileMode {
	m := fs.FileMode(fi.st.Mode & 0o777)
	switch fi.st.Mode & unix.S_IFMT {
	case unix.S_IFBLK:
		m |= fs.ModeDevice
	case unix.S_IFCHR:
		m |= fs.ModeDevice | fs.ModeCharDevice
	case unix.S_IFDIR:
		m |= fs.ModeDir
	case unix.S_IFIFO:
		m |= fs.ModeNamedPipe
	case unix.S_IFLNK:
		m |= fs.ModeSymlink
	case unix.S_IFSOCK:
		m |= fs.ModeSocket
	}
	if fi.st.Mode&unix.S_ISGID != 0 {
		m |= fs.ModeSetgid
	}
	if fi.st.Mode&unix.S_ISUID != 0 {
		m |= fs.ModeSetuid
	}
	if fi.st.Mode&unix.S_ISVTX != 0 {
		m |= fs.ModeSticky
	}
	return m
}
