package syncer

import (
	"io/fs"
	"sort"
	"strings"

	"pbxsync/internal/index"
)

// OpKind is what an Op does to one path.
type OpKind uint8

// The operations, in the order a plan runs them.
const (
	OpDelete  OpKind = iota // remove a file
	OpRmdir                 // remove a directory (its contents are removed first)
	OpMkdir                 // create a directory
	OpWrite                 // write a file's content, mode and mtime
	OpMeta                  // change a file's mode or mtime only
	OpDirMeta               // set a directory's mode and mtime (after its contents)
)

// String names the operation for logs.
func (k OpKind) String() string {
	return [...]string{"delete", "rmdir", "mkdir", "write", "meta", "dirmeta"}[k]
}

// Op is one step of a plan: what to do at a path, and what is there now.
// What is wanted there (content, mode, mtime) is not in the op: the apply
// looks it up in the index the plan was made towards (Applier.Apply's
// want). An initial sync's plan holds an op for every path of the tree
// (100,000 and more) through its whole apply, so an op holds only what
// the apply uses of the item it replaces (Prior), and that behind a
// pointer, nil when nothing is there, as for every op of an initial sync:
// 32 bytes, where an op that held its Prior was 72 and one that carried
// the wanted item too was 168 (17 MB of a target's heap at the peak of a
// 100k initial sync, beside the index it copied).
type Op struct {
	Path  string
	prior *Prior // what is at Path now; nil when nothing is
	Kind  OpKind
}

// Have returns what is at the op's path now (zero when nothing is).
func (o Op) Have() Prior {
	if o.prior == nil {
		return Prior{}
	}
	return *o.prior
}

// priors hands out the Priors of a plan's ops from blocks of priorBlock,
// one allocation a block instead of one an op.
type priors struct{ block []Prior }

const priorBlock = 512

// of returns a pointer to the Prior of it, or nil when it is no item
// (Kind 0: nothing at the path).
func (ps *priors) of(it index.Item) *Prior {
	if it.Kind == 0 {
		return nil
	}
	if len(ps.block) == cap(ps.block) {
		ps.block = make([]Prior, 0, priorBlock)
	}
	ps.block = append(ps.block, priorOf(it))
	return &ps.block[len(ps.block)-1]
}

// Prior is what an op replaces or removes: the kind of the item at its
// path, for a file its content hash, and the mode and mtime a guarded
// apply's undo puts back (guardRun). Kind 0: nothing is there.
type Prior struct {
	Hash  index.Hash
	Kind  index.Kind
	Mode  fs.FileMode
	MTime int64
}

// priorOf is the Prior of it, the item at a path (zero: none).
func priorOf(it index.Item) Prior {
	return Prior{Hash: it.Hash, Kind: it.Kind, Mode: it.Mode, MTime: it.MTime}
}

// Plan returns the operations that turn the tree described by have into
// the one described by want. Order: file deletions, directory removals
// (deepest first), directory creations (shallowest first), file writes,
// file metadata, directory metadata (deepest first, so that writing into a
// directory does not disturb its mtime afterwards). A path whose kind
// changes is removed, then created.
func Plan(have, want index.Index) []Op {
	paths := make([]string, 0, have.Len()+want.Len())
	for p := range have.All() {
		paths = append(paths, p)
	}
	for p := range want.All() {
		if !have.Has(p) {
			paths = append(paths, p)
		}
	}
	return PlanPaths(IndexLookup(have), IndexLookup(want), paths)
}

// Lookup finds the item at a path of a tree: an index, or a job's scan
// state, without copying either.
type Lookup func(p string) (index.Item, bool)

// IndexLookup is the Lookup of x.
func IndexLookup(x index.Index) Lookup {
	return x.Get
}

// PlanPaths is Plan over the given paths only: the paths where the two
// trees may differ (the items of a change), so that planning a one-file
// change costs O(1) whatever the size of the trees. A path outside paths
// is taken to be the same in both; a path listed twice counts once.
func PlanPaths(have, want Lookup, paths []string) []Op {
	var dels, rmdirs, mkdirs, metas, dirmetas []Op
	// most paths of a large change are new files: the writes get their
	// room at once, and room for the other ops of a few directories too,
	// into which the plan is then put together in place (an Op is 72
	// bytes: an initial sync's 100k writes are held once, not once in a
	// slice of writes and again in a plan they are copied into)
	writes := make([]Op, 0, len(paths)+len(paths)/16+4)
	var seen map[string]struct{}
	var ps priors
	sorted := true // the paths so far strictly increase: none is listed twice
	for i, p := range paths {
		if sorted && i > 0 && p <= paths[i-1] {
			// out of order: the paths before it go into seen, which
			// finds a path listed twice from here on
			sorted = false
			seen = make(map[string]struct{}, len(paths))
			for _, q := range paths[:i] {
				seen[q] = struct{}{}
			}
		}
		if !sorted {
			if _, dup := seen[p]; dup {
				continue
			}
			seen[p] = struct{}{}
		}
		h, hok := have(p)
		w, wok := want(p)
		if hok && (!wok || w.Kind != h.Kind) {
			if h.Kind == index.KindDir {
				rmdirs = append(rmdirs, Op{Kind: OpRmdir, Path: p, prior: ps.of(h)})
			} else {
				dels = append(dels, Op{Kind: OpDelete, Path: p, prior: ps.of(h)})
			}
			hok, h = false, index.Item{}
		}
		if !wok {
			continue
		}
		switch w.Kind {
		case index.KindDir:
			if !hok {
				mkdirs = append(mkdirs, Op{Kind: OpMkdir, Path: p})
			}
			if !hok || h.Mode != w.Mode || h.MTime != w.MTime {
				dirmetas = append(dirmetas, Op{Kind: OpDirMeta, Path: p, prior: ps.of(h)})
			}
		case index.KindFile:
			switch {
			case !hok || h.Hash != w.Hash || h.Size != w.Size:
				writes = append(writes, Op{Kind: OpWrite, Path: p, prior: ps.of(h)})
			case h.Mode != w.Mode || h.MTime != w.MTime:
				metas = append(metas, Op{Kind: OpMeta, Path: p, prior: ps.of(h)})
			}
		}
	}
	byPath := func(ops []Op) {
		sort.Slice(ops, func(i, j int) bool { return ops[i].Path < ops[j].Path })
	}
	deepestFirst := func(ops []Op) {
		sort.Slice(ops, func(i, j int) bool {
			di, dj := depth(ops[i].Path), depth(ops[j].Path)
			if di != dj {
				return di > dj
			}
			return ops[i].Path < ops[j].Path
		})
	}
	byPath(dels)
	deepestFirst(rmdirs)
	sort.Slice(mkdirs, func(i, j int) bool {
		di, dj := depth(mkdirs[i].Path), depth(mkdirs[j].Path)
		if di != dj {
			return di < dj
		}
		return mkdirs[i].Path < mkdirs[j].Path
	})
	byPath(writes)
	byPath(metas)
	deepestFirst(dirmetas)
	before := len(dels) + len(rmdirs) + len(mkdirs)
	total := before + len(writes) + len(metas) + len(dirmetas)
	var out []Op
	if total <= cap(writes) {
		// the writes move up in their own slice, the rest goes around them
		out = writes[:total]
		copy(out[before:], writes)
	} else {
		out = make([]Op, total)
		copy(out[before:], writes)
	}
	n := 0
	for _, part := range [][]Op{dels, rmdirs, mkdirs} {
		n += copy(out[n:], part)
	}
	n += len(writes)
	for _, part := range [][]Op{metas, dirmetas} {
		n += copy(out[n:], part)
	}
	return out
}

func depth(p string) int { return strings.Count(p, "/") }

// Changed returns the paths whose content, kind or mode differ between a
// and b, or that exist in only one of them, sorted. Directory mtimes alone
// do not count as a change.
func Changed(a, b index.Index) []string {
	var out []string
	for p, x := range a.All() {
		y, ok := b.Get(p)
		if !ok || x.Kind != y.Kind || x.Mode != y.Mode || (x.Kind == index.KindFile && (x.Hash != y.Hash || x.Size != y.Size)) {
			out = append(out, p)
		}
	}
	for p := range b.All() {
		if !a.Has(p) {
			out = append(out, p)
		}
	}
	sort.Strings(out)
	return out
}

// Equal reports whether a and b describe the same tree, as far as syncing
// goes: the same paths, kinds, modes, contents and file mtimes.
func Equal(a, b index.Index) bool {
	if a.Len() != b.Len() {
		return false
	}
	for p, x := range a.All() {
		if y, ok := b.Get(p); !ok || !sameForSync(x, y) {
			return false
		}
	}
	return true
}

// sameForSync reports whether x and y are the same as far as Equal goes:
// kind, mode and, for files, content and mtime.
func sameForSync(x, y index.Item) bool {
	if x.Kind != y.Kind || x.Mode != y.Mode {
		return false
	}
	return x.Kind != index.KindFile || (x.Hash == y.Hash && x.Size == y.Size && x.MTime == y.MTime)
}

// opPaths returns the paths to rescan after (or before) ops: their paths,
// but not a directory whose only op is its metadata when another op's path
// lies below it. A rescan of a path records its parent directories as
// they are, while a rescan of a directory goes through everything below
// it (in a directory of thousands of files, for one file written there).
func opPaths(ops []Op) []string {
	paths := make([]string, 0, len(ops))
	below := make(map[string]bool) // directories with an op's path below them
	for _, op := range ops {
		for d := index.Parent(op.Path); d != "" && !below[d]; d = index.Parent(d) {
			below[d] = true
		}
	}
	for _, op := range ops {
		if op.Kind == OpDirMeta && below[op.Path] {
			continue
		}
		paths = append(paths, op.Path)
	}
	return paths
}

// planPaths returns the paths of opPaths(Plan(have, want)), each once and
// in no particular order, without making the plan: refresh needs the
// paths only, and an initial sync's plan is an op for every path of the
// tree (the ops and their list of paths were 9 MB of a target's heap at
// the peak of its fetch, at 100,000 files). A path is listed when Plan has
// an op there, except a directory whose mode or mtime alone differs and
// below which another path is listed (as opPaths leaves out its OpDirMeta).
func planPaths(have, want index.Index) []string {
	var paths, dirs []string // dirs: metadata alone differs
	note := func(p string, h index.Item, hok bool, w index.Item, wok bool) {
		switch {
		case hok != wok || h.Kind != w.Kind:
			paths = append(paths, p)
		case w.Kind == index.KindDir:
			if h.Mode != w.Mode || h.MTime != w.MTime {
				dirs = append(dirs, p)
			}
		case w.Kind == index.KindFile:
			if h.Hash != w.Hash || h.Size != w.Size || h.Mode != w.Mode || h.MTime != w.MTime {
				paths = append(paths, p)
			}
		}
	}
	for p, h := range have.All() {
		w, wok := want.Get(p)
		note(p, h, true, w, wok)
	}
	for p, w := range want.All() {
		if !have.Has(p) {
			note(p, index.Item{}, false, w, true)
		}
	}
	if len(dirs) == 0 {
		return paths
	}
	below := make(map[string]bool) // directories with a listed path below them
	for _, list := range [][]string{paths, dirs} {
		for _, p := range list {
			for d := index.Parent(p); d != "" && !below[d]; d = index.Parent(d) {
				below[d] = true
			}
		}
	}
	for _, d := range dirs {
		if !below[d] {
			paths = append(paths, d)
		}
	}
	return paths
}
