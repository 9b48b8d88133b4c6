package index

import (
	"fmt"
	"hash/maphash"
	"iter"
	"math/bits"
	"sort"
	"strings"
	"sync/atomic"
)

// Index is the set of live items of a job on one host, keyed by path.
//
// It keeps its items in an array of chunks, in the order they were first
// set, and finds them through an open-addressing table of their positions
// tagged with 32 bits of their path's hash: ~96 bytes per item and 8-16
// per table slot, where a Go map[string]Item took 150-190 (each slot held
// the key beside the item, and its groups run from seven-eighths down to
// under half full after each doubling). A job holds one index per
// generation it keeps in memory; at 100,000 files that was 15-19 MiB of a
// source's and a target's peak heap.
//
// An Index is a reference, as a map is: copies of it share its items;
// New and Of make one. The zero Index holds nothing, reads as empty and
// panics when set, like a nil map. Items may be set and deleted while the
// index is ranged over (All, Items): an item deleted before the range
// reaches it is not yielded, one set meanwhile may or may not be, and no
// item is yielded twice. An Index is not safe for use by several
// goroutines while one of them changes it.
type Index struct{ t *table }

// chunkBits sets the size of the chunks an index keeps its items in
// (1024 items, 96 KiB): it grows by a chunk without copying the items it
// holds (a slice doubling to 100,000 items would copy 9.6 MB and hold the
// old array beside the new), and a small index grows its one chunk.
const (
	chunkBits = 10
	chunkLen  = 1 << chunkBits
)

// table is the shared state of an Index.
type table struct {
	seed   maphash.Seed
	chunks [][]Item // positions 0..n-1: chunk p>>chunkBits, item p&(chunkLen-1)
	n      int      // positions in use, live and deleted
	dead   []uint64 // bitmap of the deleted positions below n; nil: none since the last compaction
	ndead  int
	// slots is the open-addressing table (linear probing, a power of two
	// long, at most three quarters full): 0 is empty, else the low 32
	// bits of the path's hash << 32 | position + 1. The hash's low bits
	// are the slot it starts from, so the table grows without hashing
	// the paths again.
	slots []uint64
	// iters counts the ranges under way; a compaction waits for none
	iters atomic.Int32
}

// New returns an empty Index with room for about n items.
func New(n int) Index {
	t := &table{seed: maphash.MakeSeed()}
	t.slots = make([]uint64, slotsFor(n))
	if n > 0 {
		t.chunks = make([][]Item, 0, (n+chunkLen-1)>>chunkBits)
		t.chunks = append(t.chunks, make([]Item, 0, min(n, chunkLen)))
	}
	return Index{t}
}

// Of returns a new Index of items, each under its Path (a later item
// replaces an earlier one of the same path).
func Of(items ...Item) Index {
	x := New(len(items))
	for _, it := range items {
		x.Set(it)
	}
	return x
}

// slotsFor returns the table length for n items: a power of two, at
// least 8, at most three quarters full.
func slotsFor(n int) int {
	need := n + n/3 + 1
	if need < 8 {
		return 8
	}
	return 1 << bits.Len(uint(need-1))
}

// IsNil reports whether x is the zero Index (New and Of never return it).
func (x Index) IsNil() bool { return x.t == nil }

// Same reports whether x and y are the same index (copies of one Index),
// not merely equal ones. Two zero Indexes are not the same.
func (x Index) Same(y Index) bool { return x.t != nil && x.t == y.t }

// Len returns the number of items in x.
func (x Index) Len() int {
	if x.t == nil {
		return 0
	}
	return x.t.Len()
}

// Get returns the item at path p.
func (x Index) Get(p string) (Item, bool) {
	if x.t == nil {
		return Item{}, false
	}
	_, pos, _ := x.t.find(p)
	if pos < 0 {
		return Item{}, false
	}
	return *x.t.at(pos), true
}

// Has reports whether x holds an item at path p.
func (x Index) Has(p string) bool {
	_, ok := x.Get(p)
	return ok
}

// Set puts it into x under it.Path, replacing the item there. It panics
// on the zero Index.
func (x Index) Set(it Item) {
	t := x.t
	if t == nil {
		panic("index: Set on the zero Index")
	}
	slot, pos, tag := t.find(it.Path)
	if pos >= 0 {
		*t.at(pos) = it
		return
	}
	if t.Len()+1 > len(t.slots)-len(t.slots)/4 {
		t.grow()
		slot, _, _ = t.find(it.Path)
	}
	pos = t.push(it)
	t.slots[slot] = uint64(tag)<<32 | uint64(pos+1)
}

// Delete removes the item at path p from x, if there is one.
func (x Index) Delete(p string) {
	t := x.t
	if t == nil {
		return
	}
	slot, pos, _ := t.find(p)
	if pos < 0 {
		return
	}
	t.unlink(slot)
	*t.at(pos) = Item{} // let go of its path and vector
	if pos == t.n-1 {
		t.pop()
	} else {
		if t.dead == nil {
			t.dead = make([]uint64, (len(t.chunks)<<chunkBits)/64+1)
		}
		t.dead[pos/64] |= 1 << (pos % 64)
		t.ndead++
	}
	// trailing deleted positions are dropped at once; the others once
	// they are half of the positions and no range is under way
	for t.n > 0 && t.isDead(t.n-1) {
		t.dead[(t.n-1)/64] &^= 1 << ((t.n - 1) % 64)
		t.ndead--
		t.pop()
	}
	if t.ndead > 32 && t.ndead > t.n/2 && t.iters.Load() == 0 {
		t.compact()
	}
}

// All yields the path and item of every item of x, in the order they
// were first set (deleted ones taken out).
func (x Index) All() iter.Seq2[string, Item] {
	return func(yield func(string, Item) bool) {
		t := x.t
		if t == nil {
			return
		}
		t.iters.Add(1)
		defer t.iters.Add(-1)
		for pos := 0; pos < t.n; pos++ {
			if t.ndead > 0 && t.isDead(pos) {
				continue
			}
			it := t.at(pos)
			if !yield(it.Path, *it) {
				return
			}
		}
	}
}

// Items yields every item of x, in the order of All.
func (x Index) Items() iter.Seq[Item] {
	return func(yield func(Item) bool) {
		for _, it := range x.All() {
			if !yield(it) {
				return
			}
		}
	}
}

// Paths yields the path of every item of x, in the order of All.
func (x Index) Paths() iter.Seq[string] {
	return func(yield func(string) bool) {
		for p := range x.All() {
			if !yield(p) {
				return
			}
		}
	}
}

// Clone returns a copy of x that shares nothing with it but the items'
// version vectors: a Vector is never changed in place (its methods
// return new ones; see Vectors). The copy costs a memory copy of the
// items and the table (~2 ms at 100,000 items), without hashing a path.
// The clone of the zero Index is a new empty one.
func (x Index) Clone() Index {
	t := x.t
	if t == nil || t.Len() == 0 {
		return New(0)
	}
	if t.ndead > 0 {
		c := New(t.Len())
		for _, it := range x.All() {
			c.Set(it)
		}
		return c
	}
	c := &table{seed: t.seed, n: t.n, slots: append([]uint64(nil), t.slots...)}
	c.chunks = make([][]Item, len(t.chunks))
	for i, ch := range t.chunks {
		c.chunks[i] = append(make([]Item, 0, cap(ch)), ch...)
	}
	return Index{c}
}

// Sorted returns the items of x ordered by path.
func (x Index) Sorted() []Item {
	out := make([]Item, 0, x.Len())
	for _, it := range x.All() {
		out = append(out, it)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Path < out[j].Path })
	return out
}

// Digest returns the digest of x (see SetDigest): the sum of the hashes of
// its items (path, kind, mode, size, mtime, content hash). Two hosts with
// equal digests hold the same tree. It costs one pass over x; code that
// changes an index a few items at a time keeps a SetDigest instead.
func (x Index) Digest() Hash { return DigestOf(x).Hash() }

// ByHash returns an item of x whose content hash is h (any one, when
// several files share the content).
func (x Index) ByHash(h Hash) (Item, bool) {
	for _, it := range x.All() {
		if it.Kind == KindFile && it.Hash == h {
			return it, true
		}
	}
	return Item{}, false
}

// SameItems reports whether a and b hold the same paths with equal items
// (the same fields, version vectors compared by value). The zero Index
// equals an empty one.
func SameItems(a, b Index) bool {
	if a.Len() != b.Len() {
		return false
	}
	for p, it := range a.All() {
		o, ok := b.Get(p)
		if !ok || !it.Equal(&o) {
			return false
		}
	}
	return true
}

// String returns the items of x ordered by path, one per line (for test
// failures and debugging).
func (x Index) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "index of %d items", x.Len())
	for _, it := range x.Sorted() {
		fmt.Fprintf(&b, "\n  %s %s size=%d mode=%v mtime=%d hash=%x version=%v deleted=%v",
			it.Path, it.Kind, it.Size, it.Mode, it.MTime, it.Hash[:6], it.Version, it.Deleted)
	}
	return b.String()
}

// GoString is String, so that %#v in a failure shows the items.
func (x Index) GoString() string { return x.String() }

// at returns the item at position pos.
func (t *table) at(pos int) *Item {
	return &t.chunks[pos>>chunkBits][pos&(chunkLen-1)]
}

// isDead reports whether position pos was deleted.
func (t *table) isDead(pos int) bool {
	return t.dead != nil && t.dead[pos/64]&(1<<(pos%64)) != 0
}

// find returns the slot of path p and its item's position, or the empty
// slot where p would go and -1; tag is the hash bits a slot keeps.
func (t *table) find(p string) (slot, pos int, tag uint32) {
	tag = uint32(maphash.String(t.seed, p))
	mask := len(t.slots) - 1
	for i := int(tag) & mask; ; i = (i + 1) & mask {
		s := t.slots[i]
		if s == 0 {
			return i, -1, tag
		}
		if uint32(s>>32) == tag {
			pos := int(uint32(s)) - 1
			if t.at(pos).Path == p {
				return i, pos, tag
			}
		}
	}
}

// push appends it at a new position and returns the position.
func (t *table) push(it Item) int {
	pos := t.n
	c := pos >> chunkBits
	if c == len(t.chunks) {
		size := chunkLen
		if c == 0 {
			size = 8
		}
		t.chunks = append(t.chunks, make([]Item, 0, size))
	}
	ch := t.chunks[c]
	if len(ch) == cap(ch) { // the first chunk, growing
		grown := make([]Item, len(ch), min(2*cap(ch), chunkLen))
		copy(grown, ch)
		ch = grown
	}
	t.chunks[c] = append(ch, it)
	t.n++
	if t.dead != nil && len(t.dead)*64 < t.n {
		t.dead = append(t.dead, make([]uint64, len(t.dead)+1)...)
	}
	return pos
}

// pop drops the last position (its item already cleared).
func (t *table) pop() {
	t.n--
	c := t.n >> chunkBits
	t.chunks[c] = t.chunks[c][:len(t.chunks[c])-1]
	if len(t.chunks[c]) == 0 && c > 0 {
		t.chunks[c] = nil
		t.chunks = t.chunks[:c]
	}
}

// unlink empties slot i, moving later slots of its probe run back so that
// every item stays reachable from its home slot (Knuth's algorithm R).
func (t *table) unlink(i int) {
	mask := len(t.slots) - 1
	j := i
	for {
		j = (j + 1) & mask
		s := t.slots[j]
		if s == 0 {
			break
		}
		home := int(uint32(s>>32)) & mask
		// the entry at j stays when its home lies cyclically in (i, j]
		if i <= j {
			if i < home && home <= j {
				continue
			}
		} else if i < home || home <= j {
			continue
		}
		t.slots[i] = s
		i = j
	}
	t.slots[i] = 0
}

// grow doubles the table of slots.
func (t *table) grow() {
	old := t.slots
	t.slots = make([]uint64, 2*len(old))
	t.rehome(old)
}

// rehome puts the entries of old into t.slots.
func (t *table) rehome(old []uint64) {
	mask := len(t.slots) - 1
	for _, s := range old {
		if s == 0 {
			continue
		}
		i := int(uint32(s>>32)) & mask
		for t.slots[i] != 0 {
			i = (i + 1) & mask
		}
		t.slots[i] = s
	}
}

// compact moves the live items down over the deleted positions, keeping
// their order, and builds the table of slots again.
func (t *table) compact() {
	w := 0
	for r := 0; r < t.n; r++ {
		if t.isDead(r) {
			continue
		}
		if w != r {
			*t.at(w) = *t.at(r)
		}
		w++
	}
	for p := w; p < t.n; p++ {
		*t.at(p) = Item{}
	}
	chunks := (w + chunkLen - 1) >> chunkBits
	for c := chunks; c < len(t.chunks); c++ {
		t.chunks[c] = nil
	}
	t.chunks = t.chunks[:chunks]
	if w&(chunkLen-1) != 0 {
		t.chunks[chunks-1] = t.chunks[chunks-1][:w&(chunkLen-1)]
	}
	t.n, t.dead, t.ndead = w, nil, 0
	t.slots = make([]uint64, slotsFor(w))
	mask := len(t.slots) - 1
	for pos := 0; pos < w; pos++ {
		tag := uint32(maphash.String(t.seed, t.at(pos).Path))
		i := int(tag) & mask
		for t.slots[i] != 0 {
			i = (i + 1) & mask
		}
		t.slots[i] = uint64(tag)<<32 | uint64(pos+1)
	}
}

// Len is x.Len for the table.
func (t *table) Len() int { return t.n - t.ndead }
