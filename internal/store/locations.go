package store

import (
	"bytes"
	"errors"
	"fmt"
	"strconv"
	"strings"

	bolt "go.etcd.io/bbolt"

	"pbxsync/internal/index"
)

// The locations of the small blobs (hash → where in which pack) live in
// two buckets, as a two-level log-structured merge tree: the main one,
// which only a merge writes (in key order) and GC deletes from, and
// packed.recent, into which every flush puts its new locations. A
// location is looked up in recent first, then in main.
//
// Why: a hash is a random key, so the few thousand locations of one flush
// land on nearly every leaf of a bucket that holds them all; bbolt then
// reads every leaf, holds it as a node in the heap until the commit and
// writes it anew. At 100,000 blobs that was 15-20 MB of heap (nodes and
// the pages they were written to) and as much of meta.db mapped, at every
// flush of an initial sync, on both sides, and proportional to the whole
// store rather than to the batch. With recent kept to a quarter of main
// (mergeRecentAt), a flush touches at most that quarter, and the merge
// that folds recent into main writes a new main bucket in key order, a
// bounded number of keys per transaction (mergeChunk): an append touches
// the rightmost leaf only. Merges rewrite main; at a quarter each time
// they add up to a few times the locations' size over a store's growth
// (by reckoning, ~20 MB written over the 100,000 blobs of an initial
// sync, against ~40-50 MB when every flush rewrote every location).
//
// Which bucket is main is the value of meta key packed.main (the merge
// swaps it in the same commit that drops the old main and empties
// recent); without it, as in stores from before, main is bucket packed.
// A merge that a crash interrupted leaves a bucket packed.<n> that is not
// main; Open removes it.
var (
	bktRecent     = []byte("packed.recent")
	keyPackedMain = []byte("packed.main")
)

const (
	// minRecent is the number of locations recent holds at least
	// before a merge.
	minRecent = 16384
	// mergeChunk is the most locations one transaction of a merge
	// writes.
	mergeChunk = 16384
)

// mergeRecentAt reports whether recent, holding nRecent locations, is due
// to be merged into a main bucket of nMain: at a quarter of main, and not
// below least.
func mergeRecentAt(nRecent, nMain, least int) bool {
	return nRecent >= max(least, nMain/4)
}

// locations is the pair of buckets of small blobs' locations in one
// transaction. Either may be nil (a read-only store written before packs,
// or before recent): then it holds nothing.
type locations struct{ main, recent *bolt.Bucket }

// openLocations returns the location buckets of tx.
func openLocations(tx *bolt.Tx) locations {
	return locations{main: tx.Bucket(mainLocName(tx)), recent: tx.Bucket(bktRecent)}
}

// mainLocName returns the name of the main bucket of locations in tx,
// valid while tx is (every lookup of a blob opens the buckets: no copy
// there); a caller that writes meta meanwhile copies it.
func mainLocName(tx *bolt.Tx) []byte {
	if m := tx.Bucket(bktMeta); m != nil {
		if v := m.Get(keyPackedMain); v != nil {
			return v
		}
	}
	return bktPacked
}

// get returns the sealed location of h, nil when there is none.
func (l locations) get(h index.Hash) []byte {
	if l.recent != nil {
		if v := l.recent.Get(h[:]); v != nil {
			return v
		}
	}
	if l.main != nil {
		return l.main.Get(h[:])
	}
	return nil
}

// put sets the location of h (into recent).
func (l locations) put(h index.Hash, v []byte) error {
	if l.recent == nil {
		return fmt.Errorf("%w: no bucket %s", ErrCorrupt, bktRecent)
	}
	l.recent.FillPercent = randomFillPercent
	return l.recent.Put(h[:], v)
}

// del removes the location of h (from both buckets).
func (l locations) del(h index.Hash) error {
	for _, b := range []*bolt.Bucket{l.recent, l.main} {
		if b == nil {
			continue
		}
		if err := b.Delete(h[:]); err != nil {
			return err
		}
	}
	return nil
}

// forEach calls fn for every location in key order, from seek on (nil:
// from the first), a location of recent instead of the one of main it
// replaces. k and v are valid during the call only. An error of fn stops
// the walk and is returned; so does errStopWalk, as nil.
func (l locations) forEach(seek []byte, fn func(k, v []byte) error) error {
	first := func(b *bolt.Bucket) (*bolt.Cursor, []byte, []byte) {
		if b == nil {
			return nil, nil, nil
		}
		c := b.Cursor()
		var k, v []byte
		if seek == nil {
			k, v = c.First()
		} else {
			k, v = c.Seek(seek)
		}
		return c, k, v
	}
	mc, mk, mv := first(l.main)
	rc, rk, rv := first(l.recent)
	for mk != nil || rk != nil {
		var err error
		switch c := compareKeys(mk, rk); {
		case c < 0: // main only
			err = fn(mk, mv)
			mk, mv = mc.Next()
		case c > 0: // recent only
			err = fn(rk, rv)
			rk, rv = rc.Next()
		default: // recent replaces main
			err = fn(rk, rv)
			mk, mv = mc.Next()
			rk, rv = rc.Next()
		}
		if err == errStopWalk {
			return nil
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// errStopWalk, returned by the function of a walk, ends it without error.
var errStopWalk = errors.New("store: stop the walk")

// compareKeys orders two keys of a merge, nil (the end of a bucket)
// after every key.
func compareKeys(a, b []byte) int {
	switch {
	case a == nil && b == nil:
		return 0
	case a == nil:
		return 1
	case b == nil:
		return -1
	}
	return bytes.Compare(a, b)
}

// initLocations creates recent when it is missing, removes what a merge
// that a crash interrupted left, and counts the locations of recent (for
// mergeRecentAt). Only on a writable store, before its first update.
func (s *Store) initLocations() error {
	return s.db.Update(func(tx *bolt.Tx) error {
		if _, err := tx.CreateBucketIfNotExists(bktRecent); err != nil {
			return err
		}
		main := bytes.Clone(mainLocName(tx))
		if tx.Bucket(main) == nil {
			return fmt.Errorf("%w: the main bucket of blob locations, %s, is missing", ErrCorrupt, main)
		}
		var stale [][]byte
		err := tx.ForEach(func(name []byte, _ *bolt.Bucket) error {
			if isMergeBucket(name) && !bytes.Equal(name, main) {
				stale = append(stale, bytes.Clone(name))
			}
			return nil
		})
		if err != nil {
			return err
		}
		for _, name := range stale {
			s.log.Info("removing what an interrupted merge of blob locations left", "bucket", string(name))
			if err := tx.DeleteBucket(name); err != nil {
				return err
			}
		}
		s.nRecent = tx.Bucket(bktRecent).Stats().KeyN
		s.nMain = int(u64val(tx.Bucket(bktMeta).Get(keyMainCount)))
		return nil
	})
}

// keyMainCount is the meta key of how many locations main held after the
// last merge (absent before the first: taken as 0, so that the first
// merge comes at minRecent).
var keyMainCount = []byte("packed.main.count")

// isMergeBucket reports whether name is a bucket a merge writes:
// packed.<n>.
func isMergeBucket(name []byte) bool {
	n, ok := strings.CutPrefix(string(name), string(bktPacked)+".")
	if !ok {
		return false
	}
	_, err := strconv.ParseUint(n, 10, 64)
	return err == nil
}

// mergeBucketName returns the name of the bucket the merge after main
// writes: packed.<n+1> after packed.<n>, packed.1 after packed.
func mergeBucketName(main []byte) []byte {
	n, _ := strconv.ParseUint(strings.TrimPrefix(string(main), string(bktPacked)+"."), 10, 64)
	return []byte(string(bktPacked) + "." + strconv.FormatUint(n+1, 10))
}

// mergeRecent folds recent into main when mergeRecentAt says so: it
// writes every location, in key order and at most mergeChunk a
// transaction, into a new bucket, then in one commit makes that bucket
// main, drops the old main and empties recent. Readers see the old pair
// until that commit, the new one after it. Called with s.mu held (no
// other write transaction meanwhile) after each commit of update.
func (s *Store) mergeRecent() error {
	least, chunk := minRecent, mergeChunk
	if s.opt.minRecent > 0 { // tests: merges, and their chunks, of a few
		least, chunk = s.opt.minRecent, s.opt.minRecent
	}
	if !mergeRecentAt(s.nRecent, s.nMain, least) {
		return nil
	}
	var name, after []byte
	err := s.db.Update(func(tx *bolt.Tx) error {
		name = mergeBucketName(mainLocName(tx))
		if tx.Bucket(name) != nil {
			if err := tx.DeleteBucket(name); err != nil {
				return err
			}
		}
		_, err := tx.CreateBucket(name)
		return err
	})
	if err != nil {
		return fmt.Errorf("store: merge blob locations: %w", err)
	}
	written, done := 0, false
	for !done {
		err := s.db.Update(func(tx *bolt.Tx) error {
			dst := tx.Bucket(name)
			dst.FillPercent = 1 // only ever appended to: pages filled whole
			n := 0
			pass := mappedPass{tx: tx}
			seek := after
			if seek != nil {
				seek = append(bytes.Clone(seek), 0) // the key after it
			}
			err := openLocations(tx).forEach(seek, func(k, v []byte) error {
				if n == chunk {
					return errStopWalk
				}
				pass.touched()
				n++
				after = bytes.Clone(k)
				return dst.Put(after, bytes.Clone(v))
			})
			written += n
			done = n < chunk
			return err
		})
		if err != nil {
			return fmt.Errorf("store: merge blob locations into %s: %w", name, err)
		}
	}
	err = s.db.Update(func(tx *bolt.Tx) error {
		old := bytes.Clone(mainLocName(tx)) // meta's value changes below
		m := tx.Bucket(bktMeta)
		if err := m.Put(keyPackedMain, name); err != nil {
			return err
		}
		if err := m.Put(keyMainCount, u64key(uint64(written))); err != nil {
			return err
		}
		if err := tx.DeleteBucket(old); err != nil {
			return err
		}
		if bytes.Equal(old, bktPacked) {
			// packed stays, empty, as initDB would make it again
			if _, err := tx.CreateBucket(bktPacked); err != nil {
				return err
			}
		}
		if err := tx.DeleteBucket(bktRecent); err != nil {
			return err
		}
		_, err := tx.CreateBucket(bktRecent)
		return err
	})
	if err != nil {
		return fmt.Errorf("store: merge blob locations: swap in %s: %w", name, err)
	}
	s.log.Debug("merged the recent blob locations into the main ones", "bucket", string(name), "locations", written, "recent", s.nRecent)
	s.nRecent, s.nMain = 0, written
	_ = s.releaseMapped() // the walk and the deletes read every page of both
	return nil
}
