package hostmon

import (
	"fmt"
	"hash/maphash"
	"io/fs"
	"iter"
	"slices"
	"strings"

	"pbxsync/internal/index"
)

// States is a job's scan state, the FileState of every path, held
// compactly: a map[string]FileState costs ~190 bytes a path at 100,000
// paths (the 120-byte state, its key again, and the map's free slots),
// States ~100. Most paths sit in one array of fixed-size records sorted by
// path (the version vector as an index into a table of the distinct
// vectors); what changed since that array was built sits in a small map
// beside it, folded into the array (compact) once it has grown by an
// eighth. A lookup costs a hash of the path and a probe of an open
// addressing table of 4-byte slots over the array (a binary search took
// four times a map's lookup at 100,000 paths: one cache miss a step); a
// change costs one map entry and, amortised, a few record copies.
//
// The zero value is empty and ready. A States is not safe for concurrent
// use. An iteration may delete and set entries as with a map (an entry
// set during an iteration may or may not be produced).
type States struct {
	base  []stateRec // sorted by path
	slots []uint32   // base by the hash of its paths: see find
	seed  maphash.Seed
	vecs  []index.Vector      // the vectors of base; stateRec.vec-1 indexes it, 0 is none
	vecAt map[vecKey]uint32   // index+1 in vecs of a vector, by identity
	over  map[string]overlaid // changes since base was built
	n     int                 // entries
	iters int                 // iterations running: no compaction meanwhile
	// disk, when set, holds base (see Spill): base and slots are empty
	disk    *spilledBase
	err     error  // the first error reading disk
	changes uint64 // Set and Delete calls so far
	coming  int    // lookups said to come since disk was written (ReadBack)
}

// stateRec is a FileState in States.base: 104 bytes (the FileState is
// 120, and its map entry holds the path again).
type stateRec struct {
	path   string
	hash   index.Hash
	size   int64
	mtime  int64
	ctime  int64
	dev    uint64
	inode  uint64
	mode   fs.FileMode
	vec    uint32
	kind   index.Kind
	delete bool
}

// overlaid is an entry of States.over: a path's new state, or its removal
// (gone) when base holds it.
type overlaid struct {
	st   FileState
	gone bool
}

// vecKey identifies a vector by its backing array: the states of a job
// share a handful of vectors (index.Vectors), and one never changes in
// place.
type vecKey struct {
	first *index.Counter
	n     int
}

// minCompact is how many changes States.over holds at least before they
// are folded into base.
const minCompact = 1024

// NewStates returns the states of m.
func NewStates(m map[string]FileState) *States {
	b := newStatesBuilder(len(m))
	for p, st := range m {
		st.Path = p
		b.add(st)
	}
	return b.states()
}

// statesBuilder makes a States from states added one at a time, in any
// order: the first scan of a job adds what it finds as it goes
// (WithInitialStates), holding each as a record of the array, not as an
// entry of a map of FileState (~210 bytes a path against ~104) that
// NewStates would then copy.
type statesBuilder struct {
	s  *States
	vs index.Vectors // equal vectors become one
}

func newStatesBuilder(n int) *statesBuilder {
	return &statesBuilder{s: &States{base: make([]stateRec, 0, n)}}
}

// add adds st (st.Path set); a path added again keeps the state added last.
func (b *statesBuilder) add(st FileState) {
	st.Version = b.vs.Intern(st.Version)
	b.s.base = append(b.s.base, b.s.rec(st))
}

// states sorts what was added by path and returns it as a States; the
// builder may not be used after.
func (b *statesBuilder) states() *States {
	s := b.s
	byPath := func(a, b stateRec) int { return strings.Compare(a.path, b.path) }
	if !slices.IsSortedFunc(s.base, byPath) {
		slices.SortStableFunc(s.base, byPath)
	}
	// the last state added of a path wins
	out := s.base[:0]
	for i := range s.base {
		if i+1 < len(s.base) && s.base[i+1].path == s.base[i].path {
			continue
		}
		out = append(out, s.base[i])
	}
	clear(s.base[len(out):])
	s.base = out
	if cap(s.base)-len(s.base) > len(s.base)/8 {
		// what appends left free at the end (a scan does not know how
		// many paths it will find)
		s.base = append(make([]stateRec, 0, len(s.base)), s.base...)
	}
	s.n = len(s.base)
	s.vecAt = nil // rebuilt when needed
	s.index()
	b.s = nil
	return s
}

// Len returns the number of paths s holds.
func (s *States) Len() int {
	if s == nil {
		return 0
	}
	return s.n
}

// Get returns the state of p.
func (s *States) Get(p string) (FileState, bool) {
	if s == nil {
		return FileState{}, false
	}
	if o, ok := s.over[p]; ok {
		return o.st, !o.gone
	}
	if s.disk != nil {
		r, ok := s.disk.get(p)
		s.noteDiskErr()
		if ok {
			return s.state(&r), true
		}
		return FileState{}, false
	}
	if i, ok := s.find(p); ok {
		return s.state(&s.base[i]), true
	}
	return FileState{}, false
}

// inBase reports whether base (in memory or on disk) holds p.
func (s *States) inBase(p string) bool {
	if s.disk != nil {
		_, ok := s.disk.get(p)
		s.noteDiskErr()
		return ok
	}
	_, ok := s.find(p)
	return ok
}

// baseLen returns the number of records in base.
func (s *States) baseLen() int {
	if s.disk != nil {
		return s.disk.n
	}
	return len(s.base)
}

// Has reports whether s holds p.
func (s *States) Has(p string) bool {
	_, ok := s.Get(p)
	return ok
}

// GrowFor makes room in s for n states to be set in path order from
// first on, when they all come after every path s holds (a large apply's
// files read back into an empty or smaller tree, see syncer's settled):
// its records are then allocated once, at their size. Appended one at a
// time they grow by a quarter at each copy, the old array live during it:
// at 100,000 files 13 MB of capacity for 10.4 MB of records, 23 MB for a
// moment, at the end of an initial sync's apply where the target's heap
// peaks. Otherwise (a path s holds comes after first, or s is spilled or
// has changes over its base) it does nothing: those states do not append.
func (s *States) GrowFor(first string, n int) {
	if n <= 0 || s.disk != nil || len(s.over) > 0 || len(s.base) > 0 && s.base[len(s.base)-1].path >= first {
		return
	}
	s.base = slices.Grow(s.base, n)
}

// Set records st as the state of st.Path. A path s holds keeps the string
// it was first set with (st.Path is an equal string, often another copy:
// a scan's, a watcher event's).
func (s *States) Set(st FileState) {
	s.changes++
	p := st.Path
	if o, ok := s.over[p]; ok {
		if o.gone {
			s.n++
			if i, ok := s.find(p); ok {
				st.Path = s.base[i].path
			}
		} else {
			st.Path = o.st.Path
		}
		s.over[st.Path] = overlaid{st: st}
		return
	}
	inBase := false
	if s.disk != nil {
		inBase = s.inBase(p)
	} else if i, ok := s.find(p); ok {
		inBase, st.Path = true, s.base[i].path
	}
	if s.disk == nil && !inBase && len(s.over) == 0 && (len(s.base) == 0 || s.base[len(s.base)-1].path < p) {
		// after every path held: a sorted load or build appends
		s.base = append(s.base, s.rec(st))
		s.n++
		s.indexLast()
		return
	}
	if !inBase {
		s.n++
	}
	if s.over == nil {
		s.over = map[string]overlaid{}
	}
	s.over[p] = overlaid{st: st}
	s.maybeCompact()
}

// Delete removes the state of p, if any.
func (s *States) Delete(p string) {
	if s == nil {
		return
	}
	s.changes++
	if o, ok := s.over[p]; ok {
		if o.gone {
			return
		}
		s.n--
		if s.inBase(p) {
			s.over[p] = overlaid{gone: true}
		} else {
			delete(s.over, p)
		}
		return
	}
	if !s.inBase(p) {
		return
	}
	s.n--
	if s.over == nil {
		s.over = map[string]overlaid{}
	}
	s.over[p] = overlaid{gone: true}
	s.maybeCompact()
}

// All yields every path and its state: those of base in path order, then
// the changed ones in no order.
func (s *States) All() iter.Seq2[string, FileState] {
	return func(yield func(string, FileState) bool) {
		if s == nil {
			return
		}
		s.iters++
		defer func() { s.iters-- }()
		// no compaction meanwhile: base stays, over only grows (a map
		// made by a change during the iteration is seen too)
		if s.disk != nil {
			stopped := false
			s.disk.all(func(r *stateRec) bool {
				if _, ok := s.over[r.path]; ok {
					return true // changed: below, or removed
				}
				stopped = !yield(r.path, s.state(r))
				return !stopped
			})
			s.noteDiskErr()
			if stopped {
				return
			}
		}
		for i := range s.base {
			r := &s.base[i]
			if _, ok := s.over[r.path]; ok {
				continue // changed: below, or removed
			}
			if !yield(r.path, s.state(r)) {
				return
			}
		}
		for p, o := range s.over {
			if o.gone {
				continue
			}
			if !yield(p, o.st) {
				return
			}
		}
	}
}

// Paths yields every path s holds, in the order of All.
func (s *States) Paths() iter.Seq[string] {
	return func(yield func(string) bool) {
		for p := range s.All() {
			if !yield(p) {
				return
			}
		}
	}
}

// Index returns the items of s as an index.Index.
func (s *States) Index() index.Index {
	x := index.New(s.Len())
	for _, st := range s.All() {
		x.Set(st.Item)
	}
	return x
}

// Map returns a copy of s as a map.
func (s *States) Map() map[string]FileState {
	m := make(map[string]FileState, s.Len())
	for p, st := range s.All() {
		m[p] = st
	}
	return m
}

// Apply brings s, the prev d was scanned against, up to date.
func (s *States) Apply(d Delta) {
	for _, p := range d.Removed {
		s.Delete(p)
	}
	for _, st := range d.States {
		s.Set(st)
	}
}

// Compact folds the changes s holds beside its array into it, and gives
// back what appends left free at the array's end (a load's).
func (s *States) Compact() {
	if s == nil || s.iters > 0 {
		return
	}
	s.unspill()
	if len(s.over) == 0 {
		if cap(s.base)-len(s.base) > len(s.base)/8 {
			s.base = append(make([]stateRec, 0, len(s.base)), s.base...)
		}
		return
	}
	keys := make([]string, 0, len(s.over))
	for p := range s.over {
		keys = append(keys, p)
	}
	slices.Sort(keys)
	old, oldVecs := s.base, s.vecs
	s.base, s.vecs, s.vecAt = make([]stateRec, 0, s.n), nil, nil
	var vs index.Vectors // equal vectors of base and over become one
	i := 0
	for _, p := range keys {
		for ; i < len(old) && old[i].path < p; i++ {
			s.base = append(s.base, s.recOf(&old[i], oldVecs, &vs))
		}
		if i < len(old) && old[i].path == p {
			i++ // replaced or removed
		}
		if o := s.over[p]; !o.gone {
			o.st.Version = vs.Intern(o.st.Version)
			s.base = append(s.base, s.rec(o.st))
		}
	}
	for ; i < len(old); i++ {
		s.base = append(s.base, s.recOf(&old[i], oldVecs, &vs))
	}
	s.over = nil
	s.vecAt = nil
	s.index()
}

// maybeCompact compacts s once its changes are an eighth of its array.
func (s *States) maybeCompact() {
	if len(s.over) >= max(minCompact, s.baseLen()/8) {
		s.Compact()
	}
}

// find returns where p is in base.
func (s *States) find(p string) (int, bool) {
	if len(s.slots) == 0 {
		return 0, false
	}
	mask := uint64(len(s.slots) - 1)
	for h := maphash.String(s.seed, p) & mask; ; h = (h + 1) & mask {
		i := s.slots[h]
		if i == 0 {
			return 0, false
		}
		if s.base[i-1].path == p {
			return int(i - 1), true
		}
	}
}

// index builds slots over base: a power of two at least twice its length.
func (s *States) index() {
	n := 16
	for n < 2*len(s.base) {
		n *= 2
	}
	if len(s.slots) == n {
		clear(s.slots)
	} else {
		s.slots = make([]uint32, n)
	}
	if s.seed == (maphash.Seed{}) {
		s.seed = maphash.MakeSeed()
	}
	for i := range s.base {
		s.slot(i)
	}
}

// indexLast adds the last record of base to slots, growing them when
// they would be more than half full.
func (s *States) indexLast() {
	if 2*len(s.base) > len(s.slots) {
		s.index()
		return
	}
	s.slot(len(s.base) - 1)
}

// slot puts record i of base in the first free slot from its path's hash.
func (s *States) slot(i int) {
	mask := uint64(len(s.slots) - 1)
	h := maphash.String(s.seed, s.base[i].path) & mask
	for s.slots[h] != 0 {
		h = (h + 1) & mask
	}
	s.slots[h] = uint32(i + 1)
}

// state returns the FileState of r.
func (s *States) state(r *stateRec) FileState {
	st := FileState{Item: index.Item{Path: r.path, Size: r.size, MTime: r.mtime, Hash: r.hash, Mode: r.mode, Kind: r.kind, Deleted: r.delete},
		Dev: r.dev, Inode: r.inode, CTime: r.ctime}
	if r.vec != 0 {
		st.Version = s.vecs[r.vec-1]
	}
	return st
}

// rec returns st as a record of base, its vector added to vecs.
func (s *States) rec(st FileState) stateRec {
	return stateRec{path: st.Path, hash: st.Hash, size: st.Size, mtime: st.MTime, ctime: st.CTime, dev: st.Dev, inode: st.Inode,
		mode: st.Mode, vec: s.vecIndex(st.Version), kind: st.Kind, delete: st.Deleted}
}

// recOf returns r, a record of an old base with vectors vecs, as a record
// of base.
func (s *States) recOf(r *stateRec, vecs []index.Vector, vs *index.Vectors) stateRec {
	out := *r
	if r.vec != 0 {
		out.vec = s.vecIndex(vs.Intern(vecs[r.vec-1]))
	}
	return out
}

// vecIndex returns v's index+1 in vecs, adding it when new; 0 for an empty
// v.
func (s *States) vecIndex(v index.Vector) uint32 {
	if len(v) == 0 {
		return 0
	}
	k := vecKey{&v[0], len(v)}
	if s.vecAt == nil {
		s.vecAt = make(map[vecKey]uint32, len(s.vecs))
		for i, w := range s.vecs {
			s.vecAt[vecKey{&w[0], len(w)}] = uint32(i + 1)
		}
	}
	if i, ok := s.vecAt[k]; ok {
		return i
	}
	s.vecs = append(s.vecs, v)
	s.vecAt[k] = uint32(len(s.vecs))
	return uint32(len(s.vecs))
}

// Prev is the scan state a rescan starts from: a job's States, or a
// StateMap.
type Prev interface {
	Get(p string) (FileState, bool)
	Len() int
	All() iter.Seq2[string, FileState]
	// PathsUnder yields dir, if held, and every path held below it.
	PathsUnder(dir string) iter.Seq[string]
}

// StateMap is a map of states as a Prev.
type StateMap map[string]FileState

// Get returns the state of p.
func (m StateMap) Get(p string) (FileState, bool) {
	st, ok := m[p]
	return st, ok
}

// Len returns the number of states in m.
func (m StateMap) Len() int { return len(m) }

// All yields every path of m and its state.
func (m StateMap) All() iter.Seq2[string, FileState] {
	return func(yield func(string, FileState) bool) {
		for p, st := range m {
			if !yield(p, st) {
				return
			}
		}
	}
}

// spillMin is the fewest paths a States spills (Spill): below, what it
// holds in memory is not worth a file.
const spillMin = 4096

// Spill moves the array of records of s out of the heap into a new file
// in dir, which it unlinks at once (see spilledBase), after folding its
// changes into it; the lookup table goes with it. Until s is compacted
// again (Compact, or ~an eighth of its paths changed), a lookup costs two
// preads and a pass over s (All) reads the file in order. For a job
// that sits idle between events. A States of fewer than spillMin paths, a
// spilled one, or one being iterated, stays as it is; an error leaves s
// as it was.
func (s *States) Spill(dir string) error {
	if s == nil || s.disk != nil || s.n < spillMin {
		return nil
	}
	if s.iters > 0 {
		return errIterating
	}
	s.Compact()
	sb, err := spill(dir, s.base, s.seed)
	if err != nil {
		return fmt.Errorf("spill the scan state to %s: %w", dir, err)
	}
	s.disk, s.base, s.slots, s.vecAt, s.coming = sb, nil, nil, nil, 0
	return nil
}

// Spilled reports whether s holds its records in a file (Spill).
func (s *States) Spilled() bool { return s != nil && s.disk != nil }

// Err returns the first error reading the file of a spilled s. From then
// on s lacks what that file held: the caller should scan the tree in full
// again.
func (s *States) Err() error {
	if s == nil {
		return nil
	}
	return s.err
}

// Changes returns how many times s was changed (Set, Delete) so far.
func (s *States) Changes() uint64 {
	if s == nil {
		return 0
	}
	return s.changes
}

// noteDiskErr keeps the disk's first read error as s's.
func (s *States) noteDiskErr() {
	if s.err == nil && s.disk != nil && s.disk.err != nil {
		s.err = s.disk.err
	}
}

// ReadBack says that about lookups (Get) are about to be made, and reads
// the records of a spilled s back into memory once those said since it
// spilled add up to a sixteenth of its paths: a change of many files (a
// sed over every endpoint file: the scans of what changed, as the
// watcher's events come, the fetch of it, a target's check of the paths
// it is about to write) looked each path up in the file with three
// preads, 2-5 s of an agent's CPU for 100,000 paths, where reading the
// file back whole takes tens of milliseconds; the job spills it again
// once idle. The edits of a file or two leave s on disk (a sixteenth of
// 100,000 paths is 6,250 of them). It does nothing while s is iterated.
// It is not safe beside any other use of s.
func (s *States) ReadBack(lookups int) {
	if s == nil || s.disk == nil {
		return
	}
	s.coming += lookups
	if s.iters > 0 || s.coming < s.disk.n/readBackShare {
		return
	}
	s.unspill()
}

// readBackShare: ReadBack reads a spilled States back for lookups of at
// least 1/readBackShare of its paths.
const readBackShare = 16

// unspill reads the records of a spilled s back into its array.
func (s *States) unspill() {
	if s.disk == nil {
		return
	}
	d := s.disk
	s.base = make([]stateRec, 0, d.n)
	d.all(func(r *stateRec) bool {
		s.base = append(s.base, *r)
		return true
	})
	s.noteDiskErr()
	d.close()
	s.disk = nil
	s.index()
}

// PathsUnder yields dir, if s holds it, and every path s holds below it
// ("" : every path), in no set order: the paths of Under.
func (s *States) PathsUnder(dir string) iter.Seq[string] {
	return func(yield func(string) bool) {
		for p := range s.Under(dir) {
			if !yield(p) {
				return
			}
		}
	}
}

// Under yields dir and its state, if s holds it, and every path s holds
// below it with its state ("" : all of s), in no set order. It costs
// O(log n) lookups and what it yields (the paths of base below dir are a
// range of its path order), not a pass over s, whether s is spilled or
// not.
func (s *States) Under(dir string) iter.Seq2[string, FileState] {
	if dir == "" {
		return s.All()
	}
	return func(yield func(string, FileState) bool) {
		if s == nil {
			return
		}
		s.iters++
		defer func() { s.iters-- }()
		prefix := dir + "/"
		if _, ok := s.over[dir]; !ok {
			if st, ok := s.Get(dir); ok && !yield(dir, st) {
				return
			}
		}
		if s.disk != nil {
			stopped := false
			s.disk.from(s.disk.search(prefix), func(r *stateRec) bool {
				if !strings.HasPrefix(r.path, prefix) {
					return false
				}
				if _, ok := s.over[r.path]; ok {
					return true
				}
				stopped = !yield(r.path, s.state(r))
				return !stopped
			})
			s.noteDiskErr()
			if stopped {
				return
			}
		}
		i, _ := slices.BinarySearchFunc(s.base, prefix, func(r stateRec, p string) int { return strings.Compare(r.path, p) })
		for ; i < len(s.base) && strings.HasPrefix(s.base[i].path, prefix); i++ {
			r := &s.base[i]
			if _, ok := s.over[r.path]; ok {
				continue
			}
			if !yield(r.path, s.state(r)) {
				return
			}
		}
		for p, o := range s.over {
			if !o.gone && (p == dir || strings.HasPrefix(p, prefix)) {
				if !yield(p, o.st) {
					return
				}
			}
		}
	}
}

// PathsUnder yields dir, if m holds it, and every path m holds below it
// (a pass over m).
func (m StateMap) PathsUnder(dir string) iter.Seq[string] {
	return func(yield func(string) bool) {
		for p := range m {
			if dir == "" || p == dir || strings.HasPrefix(p, dir+"/") {
				if !yield(p) {
					return
				}
			}
		}
	}
}
