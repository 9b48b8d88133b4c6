package hostmon

import (
	"io"
	"io/fs"
)

// scanDir is a directory of the tree, open while a scan looks at its
// entries: they are stat'ed and opened relative to it (on Linux through
// its descriptor: one short system call each, no path walked from the
// root again and no symlink followed).
type scanDir interface {
	// list returns the directory's entries.
	list() ([]fs.DirEntry, error)
	// lstat returns the entry name's own state (a symlink is not
	// followed).
	lstat(name string) (fs.FileInfo, error)
	// open opens the entry name for reading, never through a symlink and
	// never blocking (a FIFO swapped in); it need not be a regular file.
	open(name string) (scanFile, error)
	close()
}

// scanFile is a file a scan reads.
type scanFile interface {
	io.ReadCloser
	stat() (fs.FileInfo, error)
	rewind() error
	// openForWriting reports whether some process (this one too) has
	// the file open for writing, as far as the platform can tell: false
	// when it cannot.
	openForWriting() bool
}
