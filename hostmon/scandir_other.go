//go:build !linux

package hostmon

import (
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"

	"pbxsync/internal/beneath"
)

// pathDir is a scanDir that works through paths below the root.
type pathDir struct{ root, rel string }

// openScanDir opens the directory rel below root.
func openScanDir(root, rel string) (scanDir, error) {
	fi, err := os.Lstat(filepath.Join(root, filepath.FromSlash(rel)))
	if err != nil {
		return nil, err
	}
	if !fi.IsDir() {
		return nil, &fs.PathError{Op: "open", Path: rel, Err: beneath.ErrSymlink}
	}
	return &pathDir{root: root, rel: rel}, nil
}

func (d *pathDir) list() ([]fs.DirEntry, error) { return beneath.ReadDir(d.root, d.rel) }

func (d *pathDir) close() {}

func (d *pathDir) lstat(name string) (fs.FileInfo, error) {
	return os.Lstat(filepath.Join(d.root, filepath.FromSlash(path.Join(d.rel, name))))
}

// LstatAt is os.Lstat of name in the directory dir.
func LstatAt(dir *os.File, name string) (fs.FileInfo, error) {
	return os.Lstat(filepath.Join(dir.Name(), name))
}

func (d *pathDir) open(name string) (scanFile, error) {
	f, err := beneath.OpenFile(d.root, path.Join(d.rel, name), os.O_RDONLY)
	if err != nil {
		return nil, err
	}
	return osFile{f}, nil
}

// osFile is a scanFile that is an *os.File.
type osFile struct{ *os.File }

func (f osFile) stat() (fs.FileInfo, error) { return f.Stat() }

// openForWriting: other platforms cannot tell.
func (f osFile) openForWriting() bool { return false }

func (f osFile) rewind() error {
	_, err := f.Seek(0, io.SeekStart)
	return err
}
