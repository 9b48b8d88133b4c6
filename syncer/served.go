package syncer

import (
	"bytes"
	"cmp"
	"encoding/binary"
	"iter"
	"slices"

	"pbxsync/internal/index"
)

// servedSet is the content a job serves (job.serving): hash → size, read
// by the transfers under job.mu. It is held as an array sorted by hash,
// 40 bytes a content (4.0 MB at 100,000 files, where a
// map[index.Hash]int64 took 6.3 MB, sized up front or grown), with what
// changed since the array was built in a small map beside it, folded
// into the array once it has grown by an eighth (as hostmon.States does).
// A lookup reads where the array's hashes with the same first bits begin
// (a table of a 4-byte start for every 4 contents or so: hashes are
// uniform) and compares the few there, and, when there are changes, one
// map lookup. (A binary search of the array, 17 steps at 100,000, took 2-3 %
// of the source's CPU in a 100k initial sync.) The zero value is empty and
// ready; a nil *servedSet serves nothing.
type servedSet struct {
	base   []servedEntry        // sorted by hash, no hash twice; nil when in file
	file   *servedFile          // base moved out of memory while the job idles (see spill); nil when not
	starts []uint32             // starts[b]: where the hashes of base whose first bits are b begin; one more at the end
	bits   uint                 // the number of first bits starts is indexed by
	over   map[index.Hash]int64 // changes since base was built: the size, or servedGone
	n      int                  // contents served
}

// servedEntry is one content of servedSet.base.
type servedEntry struct {
	h index.Hash
	n int64
}

// servedGone marks a content of servedSet.base that is no longer served.
const servedGone = -1

// newServedSet returns the set of m's contents.
func newServedSet(m map[index.Hash]int64) *servedSet {
	s := &servedSet{base: make([]servedEntry, 0, len(m))}
	for h, n := range m {
		s.base = append(s.base, servedEntry{h, n})
	}
	slices.SortFunc(s.base, cmpServed)
	s.n = len(s.base)
	s.index()
	return s
}

// cmpServed orders entries by hash: by its first 8 bytes as a number
// first (a call of bytes.Compare for each took 0.19 s of the source's CPU
// profile of a 100k initial sync, sorting the offers' changes).
func cmpServed(a, b servedEntry) int {
	x, y := binary.BigEndian.Uint64(a.h[:8]), binary.BigEndian.Uint64(b.h[:8])
	if x != y {
		return cmp.Compare(x, y)
	}
	return bytes.Compare(a.h[8:], b.h[8:])
}

// index builds starts over base: about four hashes a start.
func (s *servedSet) index() {
	s.bits = 0
	for 4<<s.bits < len(s.base) {
		s.bits++
	}
	n := 1 << s.bits
	if cap(s.starts) >= n+1 && cap(s.starts) <= 2*(n+1) {
		s.starts = s.starts[:n+1]
	} else {
		s.starts = make([]uint32, n+1)
	}
	i := 0
	for b := range n {
		s.starts[b] = uint32(i)
		for i < len(s.base) && s.top(s.base[i].h) == uint64(b) {
			i++
		}
	}
	s.starts[n] = uint32(len(s.base))
}

// top returns the first s.bits bits of h (0 when s.bits is 0: a shift by
// 64 gives 0).
func (s *servedSet) top(h index.Hash) uint64 {
	return binary.BigEndian.Uint64(h[:8]) >> (64 - s.bits)
}

// baseLen returns the number of entries of base, in memory or in file.
func (s *servedSet) baseLen() int {
	if s.file != nil {
		return s.file.n
	}
	return len(s.base)
}

// find returns h's entry of base.
func (s *servedSet) find(h index.Hash) (servedEntry, bool) {
	if s.baseLen() == 0 {
		return servedEntry{}, false
	}
	b := s.top(h)
	lo, hi := int(s.starts[b]), int(s.starts[b+1])
	if s.file != nil {
		var buf [8]servedEntry // about four a start
		for _, e := range s.file.entries(lo, hi, buf[:0]) {
			if e.h == h {
				return e, true
			}
		}
		return servedEntry{}, false
	}
	for _, e := range s.base[lo:hi] {
		if e.h == h {
			return e, true
		}
	}
	return servedEntry{}, false
}

// get returns the size of content h, and whether it is served.
func (s *servedSet) get(h index.Hash) (int64, bool) {
	if s == nil {
		return 0, false
	}
	if n, ok := s.over[h]; ok {
		if n == servedGone {
			return 0, false
		}
		return n, true
	}
	if e, ok := s.find(h); ok {
		return e.n, true
	}
	return 0, false
}

// set serves content h of size n.
func (s *servedSet) set(h index.Hash, n int64) {
	old, had := s.get(h)
	if had && old == n {
		return
	}
	if !had {
		s.n++
	}
	if s.over == nil {
		s.over = map[index.Hash]int64{}
	}
	s.over[h] = n
	s.maybeCompact()
}

// del stops serving content h.
func (s *servedSet) del(h index.Hash) {
	if _, had := s.get(h); !had {
		return
	}
	s.n--
	if _, inBase := s.find(h); !inBase {
		delete(s.over, h) // served, so in over
		return
	}
	if s.over == nil {
		s.over = map[index.Hash]int64{}
	}
	s.over[h] = servedGone
	s.maybeCompact()
}

// len returns the number of contents served.
func (s *servedSet) len() int {
	if s == nil {
		return 0
	}
	return s.n
}

// all yields every content served and its size.
func (s *servedSet) all() iter.Seq2[index.Hash, int64] {
	return func(yield func(index.Hash, int64) bool) {
		if s == nil {
			return
		}
		for e := range s.baseEntries() {
			if _, changed := s.over[e.h]; changed {
				continue
			}
			if !yield(e.h, e.n) {
				return
			}
		}
		for h, n := range s.over {
			if n != servedGone && !yield(h, n) {
				return
			}
		}
	}
}

// maybeCompact folds over into base once it holds an eighth of base (at
// least 1,024 changes).
func (s *servedSet) maybeCompact() {
	if len(s.over) < max(1024, s.baseLen()/8) || s.failed() != nil {
		return
	}
	changed := make([]servedEntry, 0, len(s.over))
	for h, n := range s.over {
		changed = append(changed, servedEntry{h, n})
	}
	slices.SortFunc(changed, cmpServed)
	out := make([]servedEntry, 0, s.n)
	next, stop := iter.Pull(s.baseEntries())
	defer stop()
	e, more := next()
	for _, c := range changed {
		for ; more && cmpServed(e, c) < 0; e, more = next() {
			out = append(out, e)
		}
		if more && e.h == c.h {
			e, more = next() // replaced or removed
		}
		if c.n != servedGone {
			out = append(out, c)
		}
	}
	for ; more; e, more = next() {
		out = append(out, e)
	}
	if s.failed() != nil {
		return // part of base unread: kept as it is (the job makes the set again, checkServed)
	}
	s.base, s.over = out, nil
	s.file.close() // back in memory
	s.file = nil
	s.index()
}

// servedRefs counts the files of a source's newest generation per content,
// beside its served set (job.serving, every content it serves), without a
// count per content: a content served counts one file unless it is listed
// in dup (two files or more) or in notCur (no file of the newest
// generation: only the one before has it). Most content belongs to one
// file, so both stay small; a map of a count per content took 7 MiB at
// 100,000 files.
type servedRefs struct {
	dup    map[index.Hash]int      // content of two files or more: how many
	notCur map[index.Hash]struct{} // served content no file of the newest generation has
}

func newServedRefs() *servedRefs {
	return &servedRefs{dup: map[index.Hash]int{}, notCur: map[index.Hash]struct{}{}}
}

// count returns how many files of the newest generation have content h,
// which serving is the served set of.
func (r *servedRefs) count(serving *servedSet, h index.Hash) int {
	if _, ok := serving.get(h); !ok {
		return 0
	}
	if _, ok := r.notCur[h]; ok {
		return 0
	}
	if n, ok := r.dup[h]; ok {
		return n
	}
	return 1
}

// add counts one more file of content h and size n, and serves h.
func (r *servedRefs) add(serving *servedSet, h index.Hash, n int64) {
	c := r.count(serving, h)
	serving.set(h, n)
	delete(r.notCur, h)
	if c >= 1 {
		r.dup[h] = c + 1
	}
}

// remove counts one file of content h less; content no file has any more
// stays served (as content of the generation before) until it is dropped.
func (r *servedRefs) remove(serving *servedSet, h index.Hash) {
	c := r.count(serving, h)
	if c == 0 {
		return
	}
	switch c--; {
	case c >= 2:
		r.dup[h] = c
	case c == 1:
		delete(r.dup, h)
	default:
		r.notCur[h] = struct{}{}
	}
}

// drop stops serving h, content of no file of the newest generation.
func (r *servedRefs) drop(serving *servedSet, h index.Hash) {
	serving.del(h)
	delete(r.notCur, h)
}

// servedOf returns the set of the file contents of x and their counts,
// built as one sorted array: no map of every content is made on the way.
func servedOf(x index.Index) (*servedSet, *servedRefs) {
	all := make([]servedEntry, 0, x.Len())
	for it := range x.Items() {
		if it.Kind == index.KindFile {
			all = append(all, servedEntry{it.Hash, it.Size})
		}
	}
	slices.SortFunc(all, cmpServed)
	refs := newServedRefs()
	s := &servedSet{base: all[:0]}
	for i := 0; i < len(all); {
		k := i + 1
		for k < len(all) && all[k].h == all[i].h {
			k++
		}
		if k-i >= 2 {
			refs.dup[all[i].h] = k - i
		}
		s.base = append(s.base, all[i]) // one content, one size
		i = k
	}
	if len(s.base) < len(all)*7/8 {
		s.base = slices.Clone(s.base) // many files share content: give back the rest
	}
	s.n = len(s.base)
	s.index()
	return s, refs
}
