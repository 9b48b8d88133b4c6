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
	return stampAt(filepath.Join(root, filepath.FromSlash(rel)))
}

// stampAt returns the stamp of the file at name (not followed).
func stampAt(name string) (treeStamp, error) {
	fi, err := os.Lstat(name)
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

// pathGuard holds the stamps of a mesh apply's paths, taken before the
// rescan that finds them unchanged (Applier.BeforeJournal): a local
// write that lands after that rescan is one no scan saw, and the apply
// must not rename the member's version over it. The apply checks every
// stamp just before its first rename (check) and, on Linux, again at
// each rename, atomically with it (Applier.guard, renameguard.go).
type pathGuard struct {
	root   string
	stamps map[string]treeStamp
}

// newPathGuard stamps paths under root now.
func newPathGuard(root string, paths []string) (*pathGuard, error) {
	g := &pathGuard{root: root}
	if err := g.stamp(paths); err != nil {
		return nil, err
	}
	return g, nil
}

// stamp replaces g's stamps by those of paths now.
func (g *pathGuard) stamp(paths []string) error {
	stamps := make(map[string]treeStamp, len(paths))
	for _, p := range paths {
		s, err := stampOf(g.root, p)
		if err != nil {
			return fmt.Errorf("stat %s before the apply: %w", p, err)
		}
		stamps[p] = s
	}
	g.stamps = stamps
	return nil
}

// check fails, wrapping errLocalChange, when any path no longer has its
// stamp.
func (g *pathGuard) check() error {
	for p, was := range g.stamps {
		now, err := stampOf(g.root, p)
		if err != nil {
			return fmt.Errorf("stat %s before the rename: %w", p, err)
		}
		if now != was {
			return localChange(p)
		}
	}
	return nil
}

// holds reports whether the file at name (one a rename just moved out of
// the tree at p) is the one stamped at p. Its change time is left out:
// the rename itself changes it.
func (g *pathGuard) holds(p, name string) (bool, error) {
	was, ok := g.stamps[p]
	if !ok {
		return false, nil
	}
	now, err := stampAt(name)
	if err != nil {
		return false, err
	}
	now.ctime = was.ctime
	return now == was, nil
}

// errLocalChange is wrapped by the error of a guarded apply refused
// because one of its paths changed here since its last rescan.
var errLocalChange = errors.New("changed here while the member's version was applied; deciding again")

// localChange is the refusal of an apply over a local change at p.
func localChange(p string) error {
	return fmt.Errorf("%s %w", p, errLocalChange)
}
