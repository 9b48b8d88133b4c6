package store

import (
	"bytes"
	"context"
	"encoding/binary"
	"os"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"pbxsync/internal/index"
)

// putDistinct puts n distinct blobs of size bytes that do not compress
// (seeded by from..from+n-1), as a scan of small files does.
func putDistinct(tb testing.TB, s *Store, from, n, size int) []index.Hash {
	tb.Helper()
	ctx := context.Background()
	hs := make([]index.Hash, 0, n)
	for i := from; i < from+n; i++ {
		b := randBytes(uint64(i), size)
		binary.BigEndian.PutUint64(b, uint64(i)) // randBytes repeats after 65,536 seeds
		h, _, err := s.PutReader(ctx, bytes.NewReader(b))
		if err != nil {
			tb.Fatal(err)
		}
		hs = append(hs, h)
	}
	return hs
}

// flushDirty returns the bytes of pages the commit of the pending blobs
// allocated (what bbolt holds in memory until that commit: the node of
// every leaf it rewrites and the page it writes it to) and the bytes of
// the leaf pages of bucket packed before it.
func flushDirty(tb testing.TB, s *Store) (dirty, packedLeaves int64) {
	tb.Helper()
	if err := s.view(func(tx *bolt.Tx) error {
		l := openLocations(tx)
		packedLeaves = int64(l.main.Stats().LeafAlloc + l.recent.Stats().LeafAlloc)
		return nil
	}); err != nil {
		tb.Fatal(err)
	}
	st := s.db.Stats()
	before := st.TxStats.GetPageAlloc()
	if err := s.Sync(); err != nil {
		tb.Fatal(err)
	}
	st = s.db.Stats()
	return st.TxStats.GetPageAlloc() - before, packedLeaves
}

// TestScanFlushRewritesOnlyLocations: a flush of a scan's new blobs into a
// store that holds many writes their locations into the recent bucket
// (random hashes: nearly every leaf of it, but not of the main one, which
// the merges write in key order, its leaves full) and one row of bucket
// fresh, not a row per blob in bucket unref, whose leaves it rewrote as
// well (random hashes too), nearly doubling what bbolt held until the
// commit.
func TestScanFlushRewritesOnlyLocations(t *testing.T) {
	s := newTestStore(t)
	putDistinct(t, s, 0, 20000, 1400)
	if err := s.Sync(); err != nil {
		t.Fatal(err)
	}
	if err := s.view(func(tx *bolt.Tx) error {
		l := openLocations(tx)
		// main, written in key order by the merges, fills its leaves;
		// recent holds what came after the last merge
		st := l.main.Stats()
		if st.KeyN < minRecent || st.LeafInuse < st.LeafAlloc*9/10 {
			t.Errorf("the main locations after 20,000 blobs: %d, leaves %d of %d bytes in use, want at least %d and 90%%", st.KeyN, st.LeafInuse, st.LeafAlloc, minRecent)
		}
		if n := l.recent.Stats().KeyN; st.KeyN+n != 20000 {
			t.Errorf("%d main and %d recent locations after 20,000 blobs", st.KeyN, n)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	putDistinct(t, s, 20000, 1500, 1400)
	dirty, leaves := flushDirty(t, s)
	t.Logf("flush of 1,500 blobs into 20,000: %d KiB of pages; bucket packed's leaves %d KiB", dirty>>10, leaves>>10)
	// 652 KiB; 2,432 with every location in one bucket; 2,920 with that
	// bucket split at 90 %; 4,776 with a row of unref per blob
	if dirty > 1<<20 {
		t.Errorf("the flush of 1,500 blobs into 20,000 allocated %d KiB of pages, want at most 1 MiB", dirty>>10)
	}
}

// BenchmarkScanFlushes puts 100,000 distinct small blobs (1,400 bytes
// that do not compress: a flush of ~3,000 of them every 4 MiB, as a
// source's first scan of the benchscale tree) and reports the highest
// heap in use while it does (peak-heap-MB; run with GOGC=10 to see the
// live heap) and the bytes of pages the commit of the last 2,800 allocated (less than a flush's 4 MiB)
// (flush-dirty-MB).
func BenchmarkScanFlushes(b *testing.B) {
	var peak uint64
	var dirty int64
	for b.Loop() {
		b.StopTimer()
		s := newTestStore(b)
		stop := sampleHeap(&peak)
		b.StartTimer()
		putDistinct(b, s, 0, 97000, 1400)
		if err := s.Sync(); err != nil {
			b.Fatal(err)
		}
		putDistinct(b, s, 97000, 2800, 1400)
		dirty, _ = flushDirty(b, s)
		b.StopTimer()
		stop()
		_ = s.Close()
		b.StartTimer()
	}
	b.ReportMetric(float64(peak)/(1<<20), "peak-heap-MB")
	b.ReportMetric(float64(dirty)/(1<<20), "flush-dirty-MB")
}

// TestGCFreshBatch: GC takes a batch of new blobs once its grace period is
// over: it deletes the blobs nothing refers to (small and a file), keeps
// the referenced one, lists the pinned one in unref with the batch's time
// (deleted once unpinned), and drops the row; before that it deletes none,
// not even a file older than the grace period.
func TestGCFreshBatch(t *testing.T) {
	s, err := Open(t.TempDir(), testLogger(t), WithGCGrace(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx := context.Background()
	large := randBytes(11, 3*SmallBlob)
	used, pinned, plain, file := put(t, s, []byte("recorded")), put(t, s, []byte("pinned")), put(t, s, []byte("nothing")), put(t, s, large)
	if err := s.Sync(); err != nil {
		t.Fatal(err)
	}
	if rows := freshRows(t, s); rows != 1 {
		t.Fatalf("%d rows of new blobs after one flush, want 1", rows)
	}
	x := index.Of(index.Item{Path: "a", Kind: index.KindFile, Size: 8, Mode: 0o640, Hash: used})
	addGen(t, s, "j", x, StateGood)
	// a file written long before its flush: its batch's time counts,
	// not the file's (the orphan sweep asks bucket fresh)
	old := time.Now().Add(-2 * time.Hour)
	if err := os.Chtimes(s.BlobPath(file), old, old); err != nil {
		t.Fatal(err)
	}
	if err := s.GC(ctx, map[string]int{"j": 1}); err != nil {
		t.Fatal(err)
	}
	for _, h := range []index.Hash{used, pinned, plain, file} {
		if !s.Has(h) {
			t.Fatalf("blob %s deleted within its grace period", h.Short())
		}
	}
	ageBlob(t, s, plain, old) // the whole batch
	s.Pin(pinned)
	if err := s.GC(ctx, map[string]int{"j": 1}); err != nil {
		t.Fatal(err)
	}
	if !s.Has(used) || !s.Has(pinned) {
		t.Fatalf("GC of an old batch: referenced blob kept %v, pinned blob kept %v; want both", s.Has(used), s.Has(pinned))
	}
	if s.Has(plain) || s.Has(file) {
		t.Fatalf("GC of an old batch: unreferenced blobs kept (small %v, file %v)", s.Has(plain), s.Has(file))
	}
	if _, err := os.Stat(s.BlobPath(file)); !os.IsNotExist(err) {
		t.Fatalf("the file of an unreferenced blob of an old batch: %v, want removed", err)
	}
	if rows := freshRows(t, s); rows != 0 {
		t.Fatalf("%d rows of new blobs after GC took the old batch, want 0", rows)
	}
	checkConsistent(t, s)
	s.Unpin(pinned)
	if err := s.GC(ctx, map[string]int{"j": 1}); err != nil {
		t.Fatal(err)
	}
	if s.Has(pinned) {
		t.Fatal("the pinned blob of an old batch outlived its pin")
	}
}

// freshRows returns the number of rows of bucket fresh.
func freshRows(t testing.TB, s *Store) int {
	t.Helper()
	n := 0
	if err := s.view(func(tx *bolt.Tx) error {
		n = tx.Bucket(bktFresh).Stats().KeyN
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return n
}
