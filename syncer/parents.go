package syncer

import (
	"os"
	"strings"

	"pbxsync/internal/beneath"
)

// parentDirs opens the parent directories of a pass's paths below a tree
// (beneath.Parent), keeping the last one open: a plan's paths come in
// path order, so the files of a directory share one open (and a directory
// that does not exist, as in a first sync's empty tree, one failure)
// instead of a walk from the root each. What it opened stays as opened
// for the pass, as a walk done earlier in the pass would. It is not safe
// for concurrent use; close lets go of the directory.
type parentDirs struct {
	root string
	dir  string   // the parent, relative to root, opened last
	f    *os.File // it, or nil when err
	err  error
	ok   bool // dir, f and err are set
}

// open returns the parent directory of rel and rel's last element, like
// beneath.Parent; the directory is the pass's (not to be closed).
func (p *parentDirs) open(rel string) (*os.File, string, error) {
	dir, base := "", rel
	if i := strings.LastIndexByte(rel, '/'); i >= 0 {
		dir, base = rel[:i], rel[i+1:]
	}
	if p.ok && p.dir == dir && base != "" && base != "." && base != ".." {
		return p.f, base, p.err
	}
	p.close()
	f, b, err := beneath.Parent(p.root, rel)
	p.dir, p.f, p.err, p.ok = dir, f, err, true
	return f, b, err
}

// close closes the directory kept open.
func (p *parentDirs) close() {
	if p.f != nil {
		_ = p.f.Close()
	}
	p.dir, p.f, p.err, p.ok = "", nil, nil, false
}
