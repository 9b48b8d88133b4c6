package syncer

import (
	"encoding/binary"

	"pbxsync/internal/index"
)

// prestagedSet holds the files staged while their content was fetched,
// by content hash: the id of each one's staging name (stagingName) and
// the metadata the fetch gave it. An initial sync of 100,000 files holds
// 100,000 of them from its fetch to its apply, the target's peak of
// memory: its entries sit in chunks (no copy as it grows) and are found
// through an open-addressing table of their positions, ~66 bytes a file,
// where a map[index.Hash]prestagedFile took ~100 (its slots hold the
// 32-byte key beside the value, its groups half to seven-eighths full:
// 10 MB). Taken entries stay until the set is empty, then it lets go of
// everything. The zero value is empty; it is not safe for concurrent use
// (Applier.prestageMu guards it).
type prestagedSet struct {
	chunks [][]prestagedEntry // positions 0..n-1, chunk p>>prestagedChunkBits
	n      int                // positions in use, taken ones included
	live   int                // entries not taken
	slots  []uint32           // 0: empty; else position + 1 (linear probing, at most three quarters full)
}

// prestagedEntry is one prestaged file; id 0 (never a staging id, see
// randomID) marks it taken.
type prestagedEntry struct {
	hash index.Hash
	id   uint64
	meta stagedMeta
}

// prestagedChunkBits sets the entries a chunk holds (1024, 56 KiB).
const prestagedChunkBits = 10

// len returns the number of entries not taken.
func (s *prestagedSet) len() int { return s.live }

// at returns the entry at position pos.
func (s *prestagedSet) at(pos int) *prestagedEntry {
	return &s.chunks[pos>>prestagedChunkBits][pos&(1<<prestagedChunkBits-1)]
}

// find returns the slot of h's entry and its position, or the empty slot
// where it would go and -1. The hash's first bytes spread the slots: it
// is a content hash already.
func (s *prestagedSet) find(h index.Hash) (slot, pos int) {
	mask := len(s.slots) - 1
	for i := int(binary.LittleEndian.Uint64(h[:8])) & mask; ; i = (i + 1) & mask {
		v := s.slots[i]
		if v == 0 {
			return i, -1
		}
		if e := s.at(int(v) - 1); e.hash == h {
			return i, int(v) - 1
		}
	}
}

// add records a file prestaged with content h; false when one is there
// to take already.
func (s *prestagedSet) add(h index.Hash, id uint64, m stagedMeta) bool {
	if s.slots == nil {
		s.slots = make([]uint32, 64)
	}
	slot, pos := s.find(h)
	if pos >= 0 {
		e := s.at(pos)
		if e.id != 0 {
			return false
		}
		e.id, e.meta = id, m // taken before: here again
		s.live++
		return true
	}
	if s.n+1 > len(s.slots)-len(s.slots)/4 {
		s.grow()
		slot, _ = s.find(h)
	}
	c := s.n >> prestagedChunkBits
	if c == len(s.chunks) {
		s.chunks = append(s.chunks, make([]prestagedEntry, 0, 1<<prestagedChunkBits))
	}
	s.chunks[c] = append(s.chunks[c], prestagedEntry{hash: h, id: id, meta: m})
	s.n++
	s.live++
	s.slots[slot] = uint32(s.n)
	return true
}

// grow doubles the table.
func (s *prestagedSet) grow() {
	s.slots = make([]uint32, 2*len(s.slots))
	mask := len(s.slots) - 1
	for pos := range s.n {
		i := int(binary.LittleEndian.Uint64(s.at(pos).hash[:8])) & mask
		for s.slots[i] != 0 {
			i = (i + 1) & mask
		}
		s.slots[i] = uint32(pos + 1)
	}
}

// has reports whether a file prestaged with content h is there to take.
func (s *prestagedSet) has(h index.Hash) bool {
	if s.live == 0 {
		return false
	}
	_, pos := s.find(h)
	return pos >= 0 && s.at(pos).id != 0
}

// take returns the file prestaged with content h and marks it taken; the
// last one taken empties the set.
func (s *prestagedSet) take(h index.Hash) (uint64, stagedMeta, bool) {
	if s.live == 0 {
		return 0, stagedMeta{}, false
	}
	_, pos := s.find(h)
	if pos < 0 || s.at(pos).id == 0 {
		return 0, stagedMeta{}, false
	}
	e := s.at(pos)
	id, m := e.id, e.meta
	e.id = 0
	if s.live--; s.live == 0 {
		*s = prestagedSet{}
	}
	return id, m, true
}

// each calls fn with the id of every file not taken.
func (s *prestagedSet) each(fn func(id uint64)) {
	for pos := range s.n {
		if e := s.at(pos); e.id != 0 {
			fn(e.id)
		}
	}
}
