package store

import (
	"context"
	"fmt"
	"os"

	bolt "go.etcd.io/bbolt"

	"pbxsync/internal/index"
)

// compactBatch is how many bytes of live records one step of a compaction
// moves (one fsync, one commit).
const compactBatch = 4 << 20

// halfDead reports whether a pack is a compaction candidate: at least half
// of its records are dead. Such a pack is never appended to again.
func (pi packInfo) halfDead() bool {
	return pi.dead > 0 && pi.dead*2 >= pi.size-int64(len(packMagic))
}

// compactPacks compacts every pack that is at least half dead (see
// compactPack).
func (s *Store) compactPacks(ctx context.Context, st *GCStats) error {
	var cands []uint32
	err := s.view(func(tx *bolt.Tx) error {
		return tx.Bucket(bktPacks).ForEach(func(k, _ []byte) error {
			n := uint32(u64val(k))
			pi, _, err := getPackInfo(tx, n)
			if err != nil {
				return err
			}
			if pi.halfDead() {
				cands = append(cands, n)
			}
			return nil
		})
	})
	if err != nil {
		return fmt.Errorf("store: gc: %w", err)
	}
	for _, n := range cands {
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("store: gc: %w", err)
		}
		if err := s.compactPack(ctx, n); err != nil {
			return fmt.Errorf("store: gc: compact pack %d: %w", n, err)
		}
		st.Packs++
	}
	return nil
}

// compactPack moves the live records of pack n to the active pack, in
// steps of compactBatch bytes (each appended, fsynced, then committed:
// the locations moved, their old records counted dead), then forgets and
// removes the pack. A crash in between leaves the pack with some records
// moved; a later GC finishes. Puts wait meanwhile (it holds s.mu).
func (s *Store) compactPack(ctx context.Context, n uint32) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.active != nil && s.activeN == n {
		s.abandonActive()
	}
	type live struct {
		h index.Hash
		l packLoc
	}
	var lives []live
	err := s.db.View(func(tx *bolt.Tx) error {
		return openLocations(tx).forEach(nil, func(k, v []byte) error {
			var h index.Hash
			copy(h[:], k)
			// a damaged location stays: a read of its blob drops it
			if l, err := decodeLoc(h, v); err == nil && l.pack == n {
				lives = append(lives, live{h, l})
			}
			return nil
		})
	})
	if err != nil {
		return err
	}
	for len(lives) > 0 {
		if err := ctx.Err(); err != nil {
			return err
		}
		var recs []packRec
		old := map[index.Hash]packLoc{}
		size := 0
		s.packMu.RLock()
		for len(lives) > 0 && size < compactBatch {
			lv := lives[0]
			lives = lives[1:]
			data, err := s.readPack(lv.h, lv.l)
			if err != nil {
				// left where it is: a read finds it damaged and moves it aside
				s.log.Warn("gc: pack record not moved", "blob", lv.h.String(), "err", err)
				continue
			}
			recs = append(recs, packRec{h: lv.h, data: data})
			old[lv.h] = lv.l
			size += len(data)
		}
		s.packMu.RUnlock()
		w, err := s.appendPacks(recs)
		if err != nil {
			s.abandonActive()
			return err
		}
		s.nRecent += len(w.locs)
		err = s.db.Update(func(tx *bolt.Tx) error {
			return recordPackWrite(tx, w, func(h index.Hash, _ packLoc) (bool, error) {
				cur, ok, err := getLoc(tx, h)
				if err != nil || !ok || cur != old[h] {
					return false, err // deleted or moved meanwhile
				}
				return true, addDead(tx, cur)
			})
		})
		if err != nil {
			s.abandonActive()
			return err
		}
	}
	dropped := false
	err = s.db.Update(func(tx *bolt.Tx) error {
		still := false
		err := openLocations(tx).forEach(nil, func(k, v []byte) error {
			var h index.Hash
			copy(h[:], k)
			if l, err := decodeLoc(h, v); err == nil && l.pack == n {
				still = true
			}
			return nil
		})
		if err != nil || still {
			return err
		}
		dropped = true
		return tx.Bucket(bktPacks).Delete(u64key(uint64(n)))
	})
	if err != nil || !dropped {
		return err
	}
	s.packMu.Lock()
	s.closePackFile(n)
	err = os.Remove(s.packPath(n))
	s.packMu.Unlock()
	if err != nil {
		return err
	}
	s.log.Info("gc: pack compacted and removed", "pack", n)
	return syncDir(s.packsDir())
}
