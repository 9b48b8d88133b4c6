package index

import (
	"encoding/binary"
	"math/bits"

	"github.com/zeebo/blake3"
)

// SetDigest is an order-independent digest of a set of items, kept up to
// date one item at a time: the sum, modulo 2^256, of the BLAKE3-256 hash
// of every item's encoding (see ItemHash). Adding or removing one item
// costs one item hash, whatever the size of the set, so a one-file change
// never sorts or hashes a whole index. The zero value is the digest of
// the empty set.
//
// It is a check that two hosts rebuilt the same tree, not a defence
// against a peer that chooses items to collide: a source can announce any
// index it likes anyway.
type SetDigest struct{ limb [4]uint64 } // little-endian limbs of the sum

// itemDomain separates item hashes from every other BLAKE3 use.
const itemDomain = "pbxsync index item v2\x00"

// ItemHash returns the BLAKE3-256 hash of what the digest covers of it:
// path, kind, mode, size, mtime and content hash (not the version vector
// nor the tombstone flag).
func ItemHash(it Item) Hash {
	const fixed = len(itemDomain) + 8 + 4*8 + HashSize
	var small [fixed + 256]byte
	buf := small[:0]
	if len(it.Path) > len(small)-fixed {
		buf = make([]byte, 0, fixed+len(it.Path))
	}
	buf = append(buf, itemDomain...)
	buf = binary.LittleEndian.AppendUint64(buf, uint64(len(it.Path)))
	buf = append(buf, it.Path...)
	buf = binary.LittleEndian.AppendUint64(buf, uint64(it.Kind))
	buf = binary.LittleEndian.AppendUint64(buf, uint64(it.Mode))
	buf = binary.LittleEndian.AppendUint64(buf, uint64(it.Size))
	buf = binary.LittleEndian.AppendUint64(buf, uint64(it.MTime))
	buf = append(buf, it.Hash[:]...)
	return Hash(blake3.Sum256(buf))
}

// Add adds it to the set.
func (d *SetDigest) Add(it Item) {
	h := ItemHash(it)
	var c uint64
	for i := range d.limb {
		d.limb[i], c = bits.Add64(d.limb[i], binary.LittleEndian.Uint64(h[8*i:]), c)
	}
}

// Remove takes it, which must have been added, out of the set.
func (d *SetDigest) Remove(it Item) {
	h := ItemHash(it)
	var b uint64
	for i := range d.limb {
		d.limb[i], b = bits.Sub64(d.limb[i], binary.LittleEndian.Uint64(h[8*i:]), b)
	}
}

// Replace removes old (when had) and adds new (when has): the change of
// one path.
func (d *SetDigest) Replace(old Item, had bool, new Item, has bool) {
	if had {
		d.Remove(old)
	}
	if has {
		d.Add(new)
	}
}

// Hash returns the digest as a Hash (the sum in little-endian bytes).
func (d SetDigest) Hash() Hash {
	var out Hash
	for i, l := range d.limb {
		binary.LittleEndian.PutUint64(out[8*i:], l)
	}
	return out
}

// DigestOf returns the SetDigest of x: one pass, no sort.
func DigestOf(x Index) SetDigest {
	var d SetDigest
	for it := range x.Items() {
		d.Add(it)
	}
	return d
}
