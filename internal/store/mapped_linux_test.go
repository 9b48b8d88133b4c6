//go:build linux

package store

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"testing"
	"time"

	"pbxsync/internal/index"
	"pbxsync/internal/procmaps"
)

// mappedRSS returns how much of the file named name (its base name) the
// process has resident through its mappings (procmaps.Resident).
func mappedRSS(t testing.TB, name string) int64 {
	t.Helper()
	n, err := procmaps.Resident(name)
	if err != nil {
		t.Fatalf("read the mappings: %v", err)
	}
	return n
}

// TestSmallBlobsNotMapped: reading every small blob of a store (in pack
// files) leaves neither the metadata database nor a pack resident: packs
// are read with pread, and the database holds only their locations (with
// small blobs in bbolt, reading 9.4 MiB of them left more than 8 MiB of
// meta.db resident).
func TestSmallBlobsNotMapped(t *testing.T) {
	s := newTestStore(t)
	hs, contents := putRandom(t, s, 3, 600, 16<<10)
	if err := s.ReleaseMapped(); err != nil {
		t.Fatal(err)
	}
	readBack(t, s, hs, contents)
	db, pack := mappedRSS(t, "meta.db"), mappedRSS(t, "000001.pack")
	t.Logf("after reading 9.4 MiB of small blobs: meta.db resident %d KiB, pack %d KiB", db>>10, pack>>10)
	if db > 1<<20 || pack != 0 {
		t.Fatalf("reading 9.4 MiB of small blobs left %d KiB of meta.db and %d KiB of the pack resident", db>>10, pack>>10)
	}
}

// TestReleaseMapped: reading many values of the metadata database (here
// small blobs in its blobs bucket, as stores kept them before packs) maps
// its pages into the process's resident set; after ReleaseMapped they are
// out of it, and every blob still reads back whole (the pages come back
// from the file).
func TestReleaseMapped(t *testing.T) {
	s := newTestStore(t)
	hs, contents := putRandom(t, s, 3, 600, 16<<10)
	unpack(t, s)
	readBack(t, s, hs, contents)
	before := mappedRSS(t, "meta.db")
	if before < 8<<20 {
		t.Fatalf("reading 9.4 MiB of small blobs left %d bytes of meta.db resident; the test does not see the mapping", before)
	}
	if err := s.ReleaseMapped(); err != nil {
		t.Fatal(err)
	}
	after := mappedRSS(t, "meta.db")
	if after > before/10 {
		t.Fatalf("meta.db resident: %d bytes before ReleaseMapped, %d after", before, after)
	}
	readBack(t, s, hs, contents)
	t.Logf("meta.db resident: %d KiB after reading every blob, %d KiB after ReleaseMapped", before>>10, after>>10)
}

// checkMapped fails t when more than 1/share of s's database is resident
// through the map after what did.
func checkMapped(t *testing.T, s *Store, what string, share int64) {
	t.Helper()
	st, err := os.Stat(s.dbPath())
	if err != nil {
		t.Fatal(err)
	}
	got := mappedRSS(t, "meta.db")
	t.Logf("meta.db: %d KiB, resident after %s: %d KiB", st.Size()>>10, what, got>>10)
	if got > st.Size()/share {
		t.Errorf("%s left %d KiB of the %d KiB database resident", what, got>>10, st.Size()>>10)
	}
}

// TestMissingDropsMappedPages: a pass over many small blobs (Missing of
// every blob) does not leave the whole database resident: the pages it
// mapped are dropped every dropEvery lookups (a 100k-file generation's
// blob check mapped the whole 150-180 MB database at once, the agents'
// peak RSS); nor do as many blobs looked up one at a time (Has, as a
// fetch or an apply does).
func TestMissingDropsMappedPages(t *testing.T) {
	s := newTestStore(t)
	ctx := context.Background()
	rng := rand.New(rand.NewPCG(5, 6))
	var hs []index.Hash
	for range 5 * dropEvery {
		b := make([]byte, 1500) // a small .conf file's worth, incompressible
		for i := range b {
			b[i] = byte(rng.Uint32())
		}
		h, _, err := s.PutReader(ctx, bytes.NewReader(b))
		if err != nil {
			t.Fatal(err)
		}
		hs = append(hs, h)
	}
	if err := s.Sync(); err != nil {
		t.Fatal(err)
	}
	for _, pass := range []struct {
		name string
		do   func()
	}{
		{"Missing of every blob", func() {
			if miss := s.Missing(hs); len(miss) != 0 {
				t.Fatalf("%d blobs missing", len(miss))
			}
		}},
		{"Has of every blob", func() {
			for _, h := range hs {
				if !s.Has(h) {
					t.Fatalf("blob %s missing", h)
				}
			}
			// up to the next drop, wherever the count of lookups stood
			for i := 0; s.lookups.Load()%dropEvery != 0; i++ {
				s.Has(hs[i%len(hs)])
			}
		}},
	} {
		if err := s.ReleaseMapped(); err != nil {
			t.Fatal(err)
		}
		pass.do()
		checkMapped(t, s, pass.name, 8)
	}
}

// TestPutsDropMappedPages: storing many small blobs (an initial sync's
// content, put in batches into the blobs bucket, each put reading its
// leaf page through the map) does not leave the database resident: the
// puts drop the pages they mapped as they go (without that, the source's
// store phase of a 100k sync mapped the whole database between two runs
// of the agent's 2-second ReleaseMapped).
func TestPutsDropMappedPages(t *testing.T) {
	s := newTestStore(t)
	ctx := context.Background()
	rng := rand.New(rand.NewPCG(7, 8))
	for round := range 4 {
		for range 2 * dropEvery {
			b := make([]byte, 1500)
			for i := range b {
				b[i] = byte(rng.Uint32())
			}
			if _, _, err := s.PutReader(ctx, bytes.NewReader(b)); err != nil {
				t.Fatal(err)
			}
		}
		if err := s.Sync(); err != nil {
			t.Fatal(err)
		}
		_ = round
	}
	checkMapped(t, s, "storing the blobs", 3)
}

// TestLargeRecordDropsMappedPages: recording a large generation (its
// items written a chunk per transaction, each commit reading the old page
// of every node it rewrites through the map) does not leave the database
// resident, although no blob is put with it.
func TestLargeRecordDropsMappedPages(t *testing.T) {
	s := newTestStore(t)
	ctx := context.Background()
	blob, _ := makeIndex(t, s, map[string]string{"x.conf": "[endpoint]\ntype=endpoint\n"}).Get("x.conf")
	if err := s.Sync(); err != nil {
		t.Fatal(err)
	}
	for gen := range 2 {
		x := index.New(0)
		for i := range 40000 {
			it := blob
			it.Path = fmt.Sprintf("site%03d/endpoint%05d.conf", i%100, i)
			it.MTime = int64(gen)
			x.Set(it)
		}
		if _, err := s.AddGeneration(ctx, &Generation{Job: "big", Origin: "pbx-a", State: StateGood, Index: x}); err != nil {
			t.Fatal(err)
		}
	}
	checkMapped(t, s, "recording two generations of 40,000 items", 16)
}

// BenchmarkFirstGenerationMapped records a first generation of 100,000
// small files as a source's scan leaves it (BenchmarkFirstGenerationAsSource)
// and reports the most of meta.db resident through the map while it does
// (peak-metadb-MB, sampled every few milliseconds): the pages its
// transactions read, counted in the agent's RSS.
//
//	go test -run '^$' -bench FirstGenerationMapped -benchtime 1x ./internal/store/
func BenchmarkFirstGenerationMapped(b *testing.B) {
	ctx := context.Background()
	var peak int64
	for b.Loop() {
		b.StopTimer()
		s, x, changed := scannedAsSource(ctx, b)
		if err := s.ReleaseMapped(); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		peak = max(peak, peakMapped(b, "meta.db", func() {
			if _, err := s.AddGeneration(ctx, &Generation{Job: "j", Origin: "a", State: StateGood, Index: x, Changed: changed}); err != nil {
				b.Fatal(err)
			}
		}))
		b.StopTimer()
		// closed: mappedRSS counts every map of a meta.db, and each
		// iteration's store would still map its own
		if err := s.Close(); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
	}
	b.ReportMetric(float64(peak)/(1<<20), "peak-metadb-MB")
}

// peakMapped runs fn and returns the most of the file named name that
// the process had resident through its mappings meanwhile (mappedRSS,
// read every 2 ms).
func peakMapped(tb testing.TB, name string, fn func()) int64 {
	tb.Helper()
	quit, done := make(chan struct{}), make(chan struct{})
	var peak int64
	go func() {
		defer close(done)
		for {
			select {
			case <-quit:
				return
			case <-time.After(2 * time.Millisecond):
			}
			peak = max(peak, mappedRSS(tb, name))
		}
	}()
	fn()
	close(quit)
	<-done
	return max(peak, mappedRSS(tb, name))
}

// hugeJournal is a journal of n writes, as an initial sync of n files
// makes.
func hugeJournal(n int) (*Journal, func(i int) JournalEntry) {
	var h index.Hash
	h[0] = 1
	return &Journal{Generation: 2}, func(i int) JournalEntry {
		return JournalEntry{Path: fmt.Sprintf("site%03d/endpoint%05d.conf", i/1000, i), Op: OpWrite,
			Staged: fmt.Sprintf("/var/lib/pbxsync/staging/.pbxsync-stage-confs-%016x", i), Hash: h, Mode: 0o644, MTime: 1}
	}
}

// TestLargeJournalMapsLittle writes the journal of a 100,000-file apply
// into a store that holds such a generation: each part is written once,
// so the commits map only the few pages they change. When the parts were
// values of one bucket, each commit rewrote the leaf its part went into,
// reading up to three earlier parts through the map: 15.4 MiB of meta.db
// mapped at the peak.
func TestLargeJournalMapsLittle(t *testing.T) {
	s := newTestStore(t)
	storedWithStates(t, s, 100000)
	if err := s.ReleaseMapped(); err != nil {
		t.Fatal(err)
	}
	j, at := hugeJournal(100000)
	peak := peakMapped(t, "meta.db", func() {
		if err := s.WriteJournalFunc("big", j, 100000, at); err != nil {
			t.Fatal(err)
		}
	})
	if peak > 4<<20 {
		t.Errorf("writing a journal of 100,000 entries mapped %.1f MiB of meta.db; want at most 4 MiB", float64(peak)/(1<<20))
	}
	got, ok, err := s.ReadJournal("big")
	if !ok || err != nil || len(got.Entries) != 100000 || got.Entries[99999] != at(99999) {
		t.Fatalf("read back: %v %v", ok, err)
	}
}

// BenchmarkWriteLargeJournal writes the journal of a 100,000-file apply
// (25 parts) and reports the most of meta.db mapped meanwhile.
func BenchmarkWriteLargeJournal(b *testing.B) {
	s := newTestStore(b)
	j, at := hugeJournal(100000)
	var peak int64
	for b.Loop() {
		peak = max(peak, peakMapped(b, "meta.db", func() {
			if err := s.WriteJournalFunc("big", j, 100000, at); err != nil {
				b.Fatal(err)
			}
		}))
	}
	b.ReportMetric(float64(peak)/(1<<20), "peak-metadb-MB")
}

// storedWithStates records a generation of n small files of job "big",
// all of one blob, and a scan state of 80 bytes for each; it returns the
// generation's number.
func storedWithStates(tb testing.TB, s *Store, n int) uint64 {
	tb.Helper()
	blob, _ := makeIndex(tb, s, map[string]string{"x.conf": "[endpoint]\ntype=endpoint\n"}).Get("x.conf")
	x := index.New(0)
	states := map[string][]byte{}
	for i := range n {
		it := blob
		it.Path = fmt.Sprintf("site%03d/endpoint%05d.conf", i%100, i)
		x.Set(it)
		states[it.Path] = bytes.Repeat([]byte{byte(i)}, 80) // a scan state's size
	}
	g, err := s.AddGeneration(context.Background(), &Generation{Job: "big", Origin: "pbx-a", State: StateGood, Index: x})
	if err != nil {
		tb.Fatal(err)
	}
	if err := s.PutScanStates("big", []string{""}, states); err != nil {
		tb.Fatal(err)
	}
	return g
}

// TestReadBackDropsMappedPages: reading a job's index and its scan states
// back (a restart, the first change after an idle spell) does not leave
// their pages resident through the map: a restart over 100,000 files held
// ~40 MiB of meta.db besides its heap.
func TestReadBackDropsMappedPages(t *testing.T) {
	s := newTestStore(t)
	const n = 100000
	g := storedWithStates(t, s, n)
	if err := s.ReleaseMapped(); err != nil {
		t.Fatal(err)
	}
	var back *Generation
	peak := peakMapped(t, "meta.db", func() {
		var err error
		if back, err = s.GenerationIndex("big", g); err != nil {
			t.Fatal(err)
		}
	})
	if back.Index.Len() != n {
		t.Fatalf("read back %d items, want %d", back.Index.Len(), n)
	}
	checkMapped(t, s, "reading 100,000 items back", 16)
	if peak > readBackMapped {
		t.Errorf("reading 100,000 items back mapped %.1f MiB of meta.db at its peak; want at most %.0f", float64(peak)/(1<<20), float64(readBackMapped)/(1<<20))
	}
	read := 0
	peak = peakMapped(t, "meta.db", func() {
		if err := s.ScanStates("big", func(string, []byte) error { read++; return nil }); err != nil {
			t.Fatal(err)
		}
	})
	if read != n {
		t.Fatalf("read back %d scan states, want %d", read, n)
	}
	checkMapped(t, s, "reading 100,000 scan states back", 16)
	if peak > readBackMapped {
		t.Errorf("reading 100,000 scan states back mapped %.1f MiB of meta.db at its peak; want at most %.0f", float64(peak)/(1<<20), float64(readBackMapped)/(1<<20))
	}
}

// readBackMapped bounds what reading items or scan states back maps of
// meta.db at once: they drop their pages as they go, every walkDrop bytes
// of keys and values (2 MiB: their pages, the elements' headers, the
// kernel's fault-around past the last page touched and the branch pages
// come to 2.5-4 MiB; a clean clone's make test saw 4.1 MiB against the 4
// MiB this bound was); without the drops, 100,000 of either mapped ~13
// MiB.
const readBackMapped = 6 << 20

// BenchmarkReadBack reads a job's index of 100,000 items and their scan
// states back, as a restart or the first change after an idle spell does,
// each time from pages not mapped yet. Dropping the mapped pages every
// 2,048 keys of the walks took 90-100 ms an op, once at the end of each
// read 50-60 ms, when readItems walked its items three times (count,
// paths, items); in its one walk now, dropping as it goes costs nothing.
//
//	go test -run '^$' -bench ReadBack ./internal/store/
func BenchmarkReadBack(b *testing.B) {
	s := newTestStore(b)
	g := storedWithStates(b, s, 100000)
	for b.Loop() {
		_ = s.ReleaseMapped()
		if _, err := s.GenerationIndex("big", g); err != nil {
			b.Fatal(err)
		}
		if err := s.ScanStates("big", func(string, []byte) error { return nil }); err != nil {
			b.Fatal(err)
		}
	}
}
