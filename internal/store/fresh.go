package store

import (
	"encoding/binary"
	"fmt"

	bolt "go.etcd.io/bbolt"

	"pbxsync/internal/index"
)

// Blobs new to the store are listed as GC candidates a batch at a time, in
// bucket fresh:
//
//	fresh   sequence (8 bytes, in put order) → put time (unix nanoseconds,
//	        8 bytes) and the hashes (32 bytes each) of the blobs a flush
//	        made durable that the store did not hold and nothing referred
//	        to, sealed
//
// A blob of a batch is unreferenced while bucket refs lacks it: the record
// that refers to it later writes its count and leaves the batch row as it
// is. Bucket unref (hash → time, one row per blob) keeps the blobs whose
// count dropped to zero and those put again while unreferenced (a new
// grace period, which overrides the batch's time). A flush once wrote a
// row of unref for every new blob: random hashes, so a flush of a few
// thousand (a source's first scan, a target's initial fetch) rewrote
// nearly every leaf of that bucket beside those of bucket packed, and the
// record removed each row again. A batch row is one key at the end of its
// bucket.
//
// GC takes the rows put before its grace period (see sweepFresh): a blob
// of such a row that refs lacks, unref does not list (its own time
// decides) and no journal or pin keeps is deleted, one that is kept is
// listed in unref with the batch's time, and the row is deleted. A blob is
// in at most one batch row while unreferenced: a flush lists in a row only
// the blobs it wrote (one the store held already goes to unref), so an
// old row never names a blob put again since.
//
// A store written before this bucket has none: Open creates it, and the
// blobs of its unref rows are collected as before. An older program
// opening a store with batch rows ignores them: the blobs they list that
// were never recorded are not collected by it (files past the grace
// period are, by its orphan sweep).
var bktFresh = []byte("fresh")

// freshRowMax is the most hashes one batch row lists (a batch larger than
// that, a target's fetch of an initial sync, gets several): ~256 KiB.
const freshRowMax = 8192

// putFresh lists hs (sorted, none referenced) as put at now in tx, in rows
// of at most freshRowMax hashes.
func putFresh(tx *bolt.Tx, now []byte, hs []index.Hash) error {
	b := tx.Bucket(bktFresh)
	b.FillPercent = 1 // keys only ever appended
	for len(hs) > 0 {
		n := min(len(hs), freshRowMax)
		seq, err := b.NextSequence()
		if err != nil {
			return err
		}
		v := make([]byte, 0, 8+32*n)
		v = append(v, now...)
		for _, h := range hs[:n] {
			v = append(v, h[:]...)
		}
		k := u64key(seq)
		if err := b.Put(k, seal(k, v)); err != nil {
			return err
		}
		hs = hs[n:]
	}
	return nil
}

// freshRow is a decoded row of bucket fresh.
type freshRow struct {
	at     uint64 // put time, unix nanoseconds
	hashes []byte // 32 bytes per blob, sharing the database's memory
}

// hash returns the i-th hash of r.
func (r freshRow) hash(i int) index.Hash { return index.Hash(r.hashes[32*i : 32*i+32]) }

// len returns the number of hashes of r.
func (r freshRow) len() int { return len(r.hashes) / 32 }

// decodeFresh checks and decodes the row v under key k; errors wrap
// ErrCorrupt.
func decodeFresh(k, v []byte) (freshRow, error) {
	what := fmt.Sprintf("batch %d of new blobs", u64val(k))
	p, err := unseal(what, k, v)
	if err != nil {
		return freshRow{}, err
	}
	if len(p) < 8 || (len(p)-8)%32 != 0 {
		return freshRow{}, fmt.Errorf("%w: %s: %d bytes", ErrCorrupt, what, len(p))
	}
	return freshRow{at: binary.BigEndian.Uint64(p), hashes: p[8:]}, nil
}

// freshHashes returns every blob the rows of bucket fresh list (for the
// orphan sweep, which asks only when it finds a file no other bucket
// knows). A damaged row is skipped: its blobs read as unknown, as the
// row's deletion by GC would leave them.
func freshHashes(tx *bolt.Tx) map[index.Hash]struct{} {
	m := map[index.Hash]struct{}{}
	_ = tx.Bucket(bktFresh).ForEach(func(k, v []byte) error {
		r, err := decodeFresh(k, v)
		if err != nil {
			return nil
		}
		for i := range r.len() {
			m[r.hash(i)] = struct{}{}
		}
		return nil
	})
	return m
}
