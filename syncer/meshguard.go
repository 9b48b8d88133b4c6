package syncer

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"

	"pbxsync/hostmon"
)

// treeStamp is what lstat says of one path of a job's tree: enough to
// tell that something wrote or replaced it since (a file renamed over it
// has another inode, one written in place another change time, size or
// mtime; one created where there was none exists).
type treeStamp struct {
	exists     bool
	mode       fs.FileMode
	size       int64
	mtime      int64
	dev, inode uint64
	ctime      int64
}

// stampOf returns the stamp of rel under root.
func stampOf(root, rel string) (treeStamp, error) {
	fi, err := os.Lstat(filepath.Join(root, filepath.FromSlash(rel)))
	if errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR) {
		return treeStamp{}, nil
	}
	if err != nil {
		return treeStamp{}, err
	}
	if fi.IsDir() {
		// what is written inside changes a directory's times: only its
		// being a directory counts
		return treeStamp{exists: true, mode: fs.ModeDir}, nil
	}
	dev, ino, ctime := hostmon.Identity(fi)
	return treeStamp{exists: true, mode: fi.Mode(), size: fi.Size(), mtime: fi.ModTime().UnixNano(), dev: dev, inode: ino, ctime: ctime}, nil
}

// stampGuard stamps paths under root now and returns a check that fails
// when any of them no longer has its stamp. A mesh apply stamps its
// paths before the rescan that finds them unchanged, and checks again
// after its journal, just before its first rename (Applier.BeforeRename):
// a local write that lands after the rescan is found there, and the
// apply is abandoned instead of renaming the member's version over it.
// What is left is the time between that lstat and the rename, not the
// journal's write and fsync.
func stampGuard(root string, paths []string) (func([]Op) error, error) {
	stamps := make(map[string]treeStamp, len(paths))
	for _, p := range paths {
		s, err := stampOf(root, p)
		if err != nil {
			return nil, fmt.Errorf("stat %s before the apply: %w", p, err)
		}
		stamps[p] = s
	}
	return func([]Op) error {
		for p, was := range stamps {
			now, err := stampOf(root, p)
			if err != nil {
				return fmt.Errorf("stat %s before the rename: %w", p, err)
			}
			if now != was {
				return fmt.Errorf("%s changed here while the member's version was applied; deciding again", p)
			}
		}
		return nil
	}, nil
}
