package store

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"time"

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
}

// GC deletes old generations and unreferenced blobs.
//
// For every job named in keepPerJob it keeps the newest keep generations
// (keep < 1 counts as 1) plus the newest good one, wherever it is, and
// deletes the other generation records and the extras attached to them.
// Jobs the map does not name are left alone (a job removed from the
// configuration keeps its history until it is named again).
//
// Then it deletes every blob that no remaining generation of any job, no
// extra, no intent journal and no Pin refers to and that is older than the
// GC grace period (WithGCGrace); a damaged metadata file stops GC before it
// deletes any blob, since it cannot tell what that file refers to.
// Temporary files untouched for a day are removed too.
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
	s.mu.Lock()
	defer s.mu.Unlock()
	jobs, err := s.Jobs()
	if err != nil {
		return st, err
	}
	live := map[index.Hash]struct{}{}
	for _, job := range jobs {
		if err := ctx.Err(); err != nil {
			return st, fmt.Errorf("store: gc: %w", err)
		}
		keep, named := keepPerJob[job]
		if named {
			if err := s.pruneJob(job, max(keep, 1), &st); err != nil {
				return st, err
			}
		}
		if err := s.liveOfJob(ctx, job, live); err != nil {
			return st, err
		}
	}
	s.pinMu.Lock()
	for h := range s.pins {
		live[h] = struct{}{}
	}
	s.pinMu.Unlock()
	st.LiveBlobs = len(live)
	if err := s.sweepBlobs(ctx, live, &st); err != nil {
		return st, err
	}
	s.sweepTmp()
	s.log.Info("gc done", "generations", st.Generations, "extras", st.Extras, "blobs", st.Blobs, "bytes", st.Bytes, "live_blobs", st.LiveBlobs)
	return st, nil
}

// pruneJob deletes the generations of job outside its window, their
// extras and orphan index files. Called with s.mu held.
func (s *Store) pruneJob(job string, keep int, st *GCStats) error {
	fail := func(err error) error { return fmt.Errorf("store: gc: job %q: %w", job, err) }
	nums, err := s.genNumbers(job)
	if err != nil {
		return fail(err)
	}
	gdir, _ := s.genDir(job)
	kept := map[uint64]bool{}
	for _, n := range nums[max(0, len(nums)-keep):] {
		kept[n] = true
	}
	if len(nums) > keep {
		// Keep the newest good generation, even far outside the window.
		good, ok, err := s.latestNumber(job, StateGood)
		if err != nil {
			return fail(err)
		}
		if ok {
			kept[good] = true
		}
	}
	removed := false
	for _, n := range nums {
		if kept[n] {
			continue
		}
		// Meta first: without it the generation no longer exists.
		for _, ext := range []string{"meta", "index"} {
			if err := os.Remove(filepath.Join(gdir, genName(n, ext))); err != nil && !errors.Is(err, fs.ErrNotExist) {
				return fail(fmt.Errorf("delete generation %d: %w", n, err))
			}
		}
		removed = true
		st.Generations++
		s.log.Info("gc: generation deleted", "job", job, "generation", n)
	}
	// Orphan index files: a crash between writing index and meta.
	if ents, err := os.ReadDir(gdir); err == nil {
		for _, e := range ents {
			if n, ok := parseGenName(e.Name(), "index"); ok && !slices.Contains(nums, n) {
				if err := os.Remove(filepath.Join(gdir, e.Name())); err == nil {
					removed = true
				}
			}
		}
	}
	if removed {
		// Make the deletions durable before any blob they referred to
		// goes: a generation must never come back without its blobs.
		if err := syncDir(gdir); err != nil {
			return fail(err)
		}
	}
	// Extras live as long as the generation they were attached to; one
	// saved before the first generation (0) as long as generation 1.
	var oldest uint64
	for _, n := range nums {
		if kept[n] {
			oldest = n
			break
		}
	}
	xs, err := s.readExtras(job)
	if err != nil {
		return fail(err)
	}
	keptXs := xs[:0:0]
	for _, x := range xs {
		if max(x.Generation, 1) >= oldest {
			keptXs = append(keptXs, x)
		} else {
			st.Extras++
			s.log.Info("gc: extra dropped with its generation", "job", job, "label", x.Label, "blob", x.Hash.String(), "generation", x.Generation)
		}
	}
	if len(keptXs) != len(xs) {
		if err := s.writeExtras(job, keptXs); err != nil {
			return fail(err)
		}
	}
	return nil
}

// liveOfJob adds to live every blob the generations, extras and journal of
// job refer to. Called with s.mu held.
func (s *Store) liveOfJob(ctx context.Context, job string, live map[index.Hash]struct{}) error {
	fail := func(err error) error {
		return fmt.Errorf("store: gc: job %q: %w; no blob deleted", job, err)
	}
	nums, err := s.genNumbers(job)
	if err != nil {
		return fail(err)
	}
	for _, n := range nums {
		if err := ctx.Err(); err != nil {
			return fail(err)
		}
		g, err := s.readGeneration(job, n)
		if err != nil {
			return fail(err)
		}
		for _, it := range g.Index {
			if it.Kind == index.KindFile && !it.Hash.IsZero() {
				live[it.Hash] = struct{}{}
			}
		}
	}
	xs, err := s.readExtras(job)
	if err != nil {
		return fail(err)
	}
	for _, x := range xs {
		live[x.Hash] = struct{}{}
	}
	path, err := s.journalPath(job)
	if err != nil {
		return fail(err)
	}
	j, _, err := s.readJournal(job, path)
	if err != nil {
		return fail(err)
	}
	if j != nil {
		for _, e := range j.Entries {
			for _, h := range []index.Hash{e.Hash, e.OldHash} {
				if !h.IsZero() {
					live[h] = struct{}{}
				}
			}
		}
	}
	return nil
}

// sweepBlobs deletes the blobs not in live that are older than the grace
// period. Puts that finish meanwhile wait for it (blobMu).
func (s *Store) sweepBlobs(ctx context.Context, live map[index.Hash]struct{}, st *GCStats) error {
	s.blobMu.Lock()
	defer s.blobMu.Unlock()
	cutoff := time.Now().Add(-s.opt.gcGrace)
	subs, err := os.ReadDir(s.blobsDir())
	if err != nil {
		return fmt.Errorf("store: gc: %w", err)
	}
	for _, sub := range subs {
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("store: gc: %w", err)
		}
		if !sub.IsDir() {
			continue
		}
		dir := filepath.Join(s.blobsDir(), sub.Name())
		ents, err := os.ReadDir(dir)
		if err != nil {
			return fmt.Errorf("store: gc: %w", err)
		}
		removed := false
		for _, e := range ents {
			h, err := index.ParseHash(e.Name())
			if err != nil || h.String()[:2] != sub.Name() {
				continue // not ours; leave it
			}
			if _, ok := live[h]; ok {
				continue
			}
			info, err := e.Info()
			if err != nil || !info.Mode().IsRegular() || !info.ModTime().Before(cutoff) {
				continue
			}
			if err := os.Remove(filepath.Join(dir, e.Name())); err != nil {
				s.log.Warn("gc: delete blob", "blob", h.String(), "err", err)
				continue
			}
			removed = true
			st.Blobs++
			st.Bytes += info.Size()
		}
		if removed {
			_ = syncDir(dir)
		}
	}
	return nil
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
