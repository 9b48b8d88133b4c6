package store

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"

	bolt "go.etcd.io/bbolt"

	"pbxsync/internal/index"
)

// Pin protects blobs from GC while this Store is open, e.g. the blobs of an
// apply in progress whose generation is not recorded yet. Pins are counted:
// every Pin needs one Unpin. They live in memory only (GC runs in the
// writer process that pins).
func (s *Store) Pin(hs ...index.Hash) {
	s.pinMu.Lock()
	defer s.pinMu.Unlock()
	for _, h := range hs {
		s.pins[h]++
	}
}

// Unpin releases pins taken by Pin.
func (s *Store) Unpin(hs ...index.Hash) {
	s.pinMu.Lock()
	defer s.pinMu.Unlock()
	for _, h := range hs {
		switch s.pins[h] {
		case 0:
		case 1:
			delete(s.pins, h)
		default:
			s.pins[h]--
		}
	}
}

// GCStats says what one GC did.
type GCStats struct {
	Generations int   // generation records deleted
	Extras      int   // extras dropped with their generations
	Blobs       int   // blobs deleted
	Bytes       int64 // compressed bytes freed by deleted blobs
	LiveBlobs   int   // blobs still referenced
	Packs       int   // pack files compacted (at least half dead)
}

// GC deletes old generations and unreferenced blobs.
//
// For every job named in keepPerJob it keeps the newest keep generations
// (keep < 1 counts as 1) plus the newest good one, wherever it is, and
// deletes the other generation records and the extras attached to them.
// Jobs the map does not name are left alone (a job removed from the
// configuration keeps its history until it is named again).
//
// Blobs are reference-counted (the jobs' newest indexes, the old items
// the kept change records hold, extras): GC deletes the blobs whose count
// is zero, that no intent journal and no Pin names, and that have been
// unreferenced (or put) for longer than the GC grace period
// (WithGCGrace). It reads no index: the cost is that of what it deletes.
// The first GC after Open also removes blob files the database does not
// know (left by a crash between a rename and its commit), and temporary
// files untouched for a day.
func (s *Store) GC(ctx context.Context, keepPerJob map[string]int) error {
	_, err := s.GCStats(ctx, keepPerJob)
	return err
}

// GCStats is GC that also returns what it did.
func (s *Store) GCStats(ctx context.Context, keepPerJob map[string]int) (GCStats, error) {
	var st GCStats
	if err := s.writable(); err != nil {
		return st, err
	}
	jobs, err := s.Jobs()
	if err != nil {
		return st, err
	}
	for _, job := range jobs {
		if err := ctx.Err(); err != nil {
			return st, fmt.Errorf("store: gc: %w", err)
		}
		if keep, named := keepPerJob[job]; named {
			var js GCStats
			if err := s.update(func(tx *bolt.Tx) error {
				js = GCStats{}
				return s.pruneJob(tx, job, max(keep, 1), &js)
			}); err != nil {
				return st, fmt.Errorf("store: gc: job %q: %w", job, err)
			}
			st.Generations += js.Generations
			st.Extras += js.Extras
		}
	}
	if err := s.sweepBlobs(ctx, &st); err != nil {
		return st, err
	}
	if err := s.compactPacks(ctx, &st); err != nil {
		return st, err
	}
	if err := s.migrateBlobsToPacks(); err != nil {
		return st, err
	}
	if !s.orphans.Swap(true) {
		s.sweepOrphans(ctx)
		s.sweepTmp()
	}
	s.log.Info("gc done", "generations", st.Generations, "extras", st.Extras, "blobs", st.Blobs, "bytes", st.Bytes, "live_blobs", st.LiveBlobs)
	return st, nil
}

// pruneJob deletes the generations of job outside its window, the change
// records no kept generation needs, and the extras attached to deleted
// generations, releasing their references.
func (s *Store) pruneJob(tx *bolt.Tx, job string, keep int, st *GCStats) error {
	jb, err := jobBucket(tx, job, false)
	if err != nil || jb == nil {
		return err
	}
	gens := jb.Bucket(bktGens)
	var nums []uint64
	if err := gens.ForEach(func(k, _ []byte) error {
		nums = append(nums, u64val(k))
		return nil
	}); err != nil {
		return err
	}
	if len(nums) == 0 {
		return nil
	}
	kept := map[uint64]bool{}
	for _, n := range nums[max(0, len(nums)-keep):] {
		kept[n] = true
	}
	if len(nums) > keep {
		// Keep the newest good generation, even far outside the window.
		good, err := latestNumber(jb, job, StateGood)
		if err != nil {
			return err
		}
		if good != 0 {
			kept[good] = true
		}
	}
	var oldest uint64
	for _, n := range nums {
		if kept[n] {
			oldest = n
			break
		}
	}
	chb := jb.Bucket(bktChanges)
	for i, n := range nums {
		if kept[n] {
			continue
		}
		if n > oldest {
			// A generation between kept ones: its record joins the next
			// generation's, which then changes against the one before.
			if err := mergeRecord(tx, chb, n, nums[i+1]); err != nil {
				return err
			}
		}
		if err := gens.Delete(u64key(n)); err != nil {
			return err
		}
		if err := deleteChanged(jb, n); err != nil {
			return err
		}
		st.Generations++
		s.log.Info("gc: generation deleted", "job", job, "generation", n)
	}
	// Rebuilding generation k undoes the records of every generation
	// after k: records up to the oldest kept one are not needed any more,
	// and the old items they hold are released.
	var drop [][]byte
	c := chb.Cursor()
	for k, _ := c.First(); k != nil && u64val(k) <= oldest; k, _ = c.Next() {
		drop = append(drop, k)
	}
	released := &refDeltas{} // applied in key order (refSorted)
	for _, k := range drop {
		rec := chb.Bucket(k)
		if rec != nil {
			if err := rec.ForEach(func(p, r []byte) error {
				if len(r) < 2 || r[0] != 1 {
					return nil
				}
				it, err := decodeItem(string(p), r[1:])
				if err != nil {
					return err
				}
				if liveFile(&it) {
					released.add(it.Hash, -1)
				}
				return nil
			}); err != nil {
				return err
			}
		}
		if err := chb.DeleteBucket(k); err != nil {
			return err
		}
	}
	if err := refSorted(tx, released.sorted()); err != nil {
		return err
	}
	// Extras live as long as the generation they were attached to; one
	// saved before the first generation (0) as long as generation 1.
	xs, err := readExtras(jb)
	if err != nil {
		return err
	}
	keptXs := xs[:0:0]
	for _, x := range xs {
		if max(x.Generation, 1) >= oldest {
			keptXs = append(keptXs, x)
			continue
		}
		st.Extras++
		s.log.Info("gc: extra dropped with its generation", "job", job, "label", x.Label, "blob", x.Hash.String(), "generation", x.Generation)
		if err := ref(tx, x.Hash, -1); err != nil {
			return err
		}
	}
	if len(keptXs) != len(xs) {
		return writeExtras(jb, keptXs)
	}
	return nil
}

// mergeRecord folds the change record of generation from into that of
// generation to (the next one) and deletes it: for a path both changed,
// to's record keeps from's old item and the item in between is released.
func mergeRecord(tx *bolt.Tx, chb *bolt.Bucket, from, to uint64) error {
	src := chb.Bucket(u64key(from))
	if src == nil {
		return nil
	}
	dst := chb.Bucket(u64key(to))
	if dst == nil {
		var err error
		if dst, err = chb.CreateBucket(u64key(to)); err != nil {
			return err
		}
	}
	err := src.ForEach(func(p, r []byte) error {
		if mid := dst.Get(p); mid != nil {
			if len(mid) > 1 && mid[0] == 1 {
				it, err := decodeItem(string(p), mid[1:])
				if err != nil {
					return err
				}
				if liveFile(&it) {
					if err := ref(tx, it.Hash, -1); err != nil {
						return err
					}
				}
			}
		}
		return dst.Put(p, bytes.Clone(r))
	})
	if err != nil {
		return err
	}
	return chb.DeleteBucket(u64key(from))
}

// protected returns the blobs GC must keep whatever their count: those of
// intent journals and pins.
func (s *Store) protected(tx *bolt.Tx) (map[index.Hash]struct{}, error) {
	keep := map[index.Hash]struct{}{}
	err := tx.Bucket(bktJobs).ForEachBucket(func(k []byte) error {
		j, err := readJournal(tx, string(k))
		if err != nil {
			return fmt.Errorf("job %q: %w; no blob deleted", k, err)
		}
		if j != nil {
			for _, e := range j.Entries {
				for _, h := range []index.Hash{e.Hash, e.OldHash} {
					if !h.IsZero() {
						keep[h] = struct{}{}
					}
				}
			}
		}
		return nil
	})
	s.pinMu.Lock()
	for h := range s.pins {
		keep[h] = struct{}{}
	}
	s.pinMu.Unlock()
	return keep, err
}

// sweepBlobs deletes the unreferenced blobs past the grace period: small
// ones in the transaction, files after it committed (a crash in between
// leaves an orphan file, which the orphan sweep removes).
func (s *Store) sweepBlobs(ctx context.Context, st *GCStats) error {
	cutoff := uint64(time.Now().Add(-s.opt.gcGrace).UnixNano())
	var files []index.Hash
	err := s.update(func(tx *bolt.Tx) error {
		files = files[:0]
		if s.recording.Load() > 0 {
			// the blobs of a generation's later chunks are not referenced
			// yet (checked under s.mu, as the record counts itself)
			s.log.Info("gc: no blob deleted while a generation is recorded in chunks")
			return nil
		}
		keep, err := s.protected(tx)
		if err != nil {
			return err
		}
		st.LiveBlobs = tx.Bucket(bktRefs).Stats().KeyN
		// the rows of bucket fresh first: a blob of theirs that unref
		// lists is left to its time there
		if err := s.sweepFresh(ctx, tx, cutoff, keep, st, &files); err != nil {
			return err
		}
		unref := tx.Bucket(bktUnref)
		var drop [][]byte
		c := unref.Cursor()
		for k, v := c.First(); k != nil; k, v = c.Next() {
			if err := ctx.Err(); err != nil {
				return err
			}
			var h index.Hash
			copy(h[:], k)
			if _, ok := keep[h]; ok || u64val(v) > cutoff {
				continue
			}
			drop = append(drop, k)
		}
		for _, k := range drop {
			if err := dropBlob(tx, index.Hash(k), st, &files); err != nil {
				return err
			}
			if err := unref.Delete(k); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("store: gc: %w", err)
	}
	s.blobMu.Lock()
	defer s.blobMu.Unlock()
	dirs := map[string]struct{}{}
	for _, h := range files {
		if s.pendingHas(h) {
			continue // put again since; it is recorded with its batch
		}
		path := s.BlobPath(h)
		info, err := os.Stat(path)
		if err != nil {
			continue
		}
		if err := os.Remove(path); err != nil {
			s.log.Warn("gc: delete blob", "blob", h.String(), "err", err)
			continue
		}
		st.Blobs++
		st.Bytes += info.Size()
		dirs[filepath.Dir(path)] = struct{}{}
	}
	for d := range dirs {
		_ = syncDir(d)
	}
	return nil
}

// sweepFresh deletes the blobs of the rows of bucket fresh put before
// cutoff that refs lacks and unref does not list, except those keep
// names, which it lists in unref with the row's time; then the rows. A
// damaged row is deleted and its blobs left where they are.
func (s *Store) sweepFresh(ctx context.Context, tx *bolt.Tx, cutoff uint64, keep map[index.Hash]struct{}, st *GCStats, files *[]index.Hash) error {
	fresh, refs, unref := tx.Bucket(bktFresh), tx.Bucket(bktRefs), tx.Bucket(bktUnref)
	var done [][]byte
	c := fresh.Cursor()
	for k, v := c.First(); k != nil; k, v = c.Next() {
		if err := ctx.Err(); err != nil {
			return err
		}
		r, err := decodeFresh(k, v)
		if err != nil {
			s.log.Warn("gc: dropped a damaged batch of new blobs; its blobs stay", "err", err)
			done = append(done, k)
			continue
		}
		if r.at > cutoff {
			break // the rows are in put order
		}
		for i := range r.len() {
			h := r.hash(i)
			if refs.Get(h[:]) != nil || unref.Get(h[:]) != nil {
				continue
			}
			if _, ok := keep[h]; ok {
				if err := unref.Put(h[:], u64key(r.at)); err != nil {
					return err
				}
				continue
			}
			if err := dropBlob(tx, h, st, files); err != nil {
				return err
			}
		}
		done = append(done, k)
	}
	for _, k := range done {
		if err := fresh.Delete(k); err != nil {
			return err
		}
	}
	return nil
}

// dropBlob deletes unreferenced blob h in tx: a small one's location (its
// record counted dead in its pack) or value; a file is added to files, to
// be removed after the commit.
func dropBlob(tx *bolt.Tx, h index.Hash, st *GCStats, files *[]index.Hash) error {
	switch l, ok, err := getLoc(tx, h); {
	case err != nil:
		// a damaged location: dropped, its record not counted
		return openLocations(tx).del(h)
	case ok:
		st.Blobs++
		st.Bytes += int64(l.n)
		if err := openLocations(tx).del(h); err != nil {
			return err
		}
		return addDead(tx, l)
	}
	blobs := tx.Bucket(bktBlobs)
	if v := blobs.Get(h[:]); v != nil {
		st.Blobs++
		st.Bytes += int64(len(v))
		return blobs.Delete(h[:])
	}
	*files = append(*files, h)
	return nil
}

func (s *Store) pendingHas(h index.Hash) bool {
	s.pendMu.Lock()
	defer s.pendMu.Unlock()
	_, ok := s.pending[h]
	return ok
}

// sweepOrphans removes blob files past the grace period that the database
// neither references nor lists as unreferenced, and files the database
// holds a small copy of (left by a migration).
func (s *Store) sweepOrphans(ctx context.Context) {
	cutoff := time.Now().Add(-s.opt.gcGrace)
	subs, err := os.ReadDir(s.blobsDir())
	if err != nil {
		return
	}
	s.blobMu.Lock()
	defer s.blobMu.Unlock()
	var fresh map[index.Hash]struct{} // read when first needed
	for _, sub := range subs {
		if ctx.Err() != nil || !sub.IsDir() {
			continue
		}
		dir := filepath.Join(s.blobsDir(), sub.Name())
		ents, err := os.ReadDir(dir)
		if err != nil {
			continue
		}
		removed := false
		for _, e := range ents {
			h, err := index.ParseHash(e.Name())
			if err != nil || h.String()[:2] != sub.Name() || s.pendingHas(h) {
				continue
			}
			known, small := false, false
			_ = s.db.View(func(tx *bolt.Tx) error {
				known = tx.Bucket(bktRefs).Get(h[:]) != nil || tx.Bucket(bktUnref).Get(h[:]) != nil
				small = hasSmall(tx, h)
				if !known && !small {
					if fresh == nil {
						fresh = freshHashes(tx)
					}
					_, known = fresh[h]
				}
				return nil
			})
			if known && !small {
				continue
			}
			info, err := e.Info()
			if err != nil || !info.Mode().IsRegular() || (!small && !info.ModTime().Before(cutoff)) {
				continue
			}
			if os.Remove(filepath.Join(dir, e.Name())) == nil {
				removed = true
				s.log.Info("gc: removed a blob file the database does not use", "blob", h.String())
			}
		}
		if removed {
			_ = syncDir(dir)
		}
	}
}

// sweepTmp removes temporary files untouched for a day. Open removes all
// of them already (a crashed writer's); this catches the few a running
// writer failed to remove, without racing a slow Put in progress.
func (s *Store) sweepTmp() {
	cutoff := time.Now().Add(-24 * time.Hour)
	ents, err := os.ReadDir(s.tmpDir())
	if err != nil {
		return
	}
	for _, e := range ents {
		if info, err := e.Info(); err == nil && info.ModTime().Before(cutoff) {
			_ = os.Remove(filepath.Join(s.tmpDir(), e.Name()))
		}
	}
}
