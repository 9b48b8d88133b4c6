package store

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"math/rand/v2"
	"os"
	"runtime"
	"strconv"
	"strings"
	"testing"

	bolt "go.etcd.io/bbolt"

	"pbxsync/internal/index"
)

// mappedRSS returns how much of the file named name (its base name) the
// process has resident through its mappings (/proc/self/smaps).
func mappedRSS(t *testing.T, name string) int64 {
	t.Helper()
	f, err := os.Open("/proc/self/smaps")
	if err != nil {
		t.Skipf("no /proc/self/smaps: %v", err)
	}
	defer f.Close()
	var total int64
	in := false
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		fields := strings.Fields(line)
		if len(fields) >= 5 && strings.Contains(fields[0], "-") && !strings.HasSuffix(fields[0], ":") {
			in = len(fields) >= 6 && strings.HasSuffix(fields[len(fields)-1], "/"+name)
			continue
		}
		if in && len(fields) == 3 && fields[0] == "Rss:" {
			kb, _ := strconv.ParseInt(fields[1], 10, 64)
			total += kb << 10
		}
	}
	return total
}

// smallBlobStore returns a store holding n incompressible blobs of 1,500
// bytes (a small .conf file's worth) made from seed, durable and with no
// database page mapped, their hashes and the database's size.
func smallBlobStore(t *testing.T, seed uint64, n int) (*Store, []index.Hash, int64) {
	t.Helper()
	s := newTestStore(t)
	rng := rand.New(rand.NewPCG(seed, seed+1))
	var hs []index.Hash
	for range n {
		b := make([]byte, 1500)
		for i := range b {
			b[i] = byte(rng.Uint32())
		}
		h, _, err := s.PutReader(context.Background(), bytes.NewReader(b))
		if err != nil {
			t.Fatal(err)
		}
		hs = append(hs, h)
	}
	if err := s.Sync(); err != nil {
		t.Fatal(err)
	}
	if err := s.ReleaseMapped(); err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(s.dbPath())
	if err != nil {
		t.Fatal(err)
	}
	return s, hs, st.Size()
}

// TestReleaseMapped: reading every small blob of a store maps the
// metadata database's pages into the process's resident set; after
// ReleaseMapped they are out of it, and every blob still reads back
// whole (the pages come back from the file).
func TestReleaseMapped(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("ReleaseMapped does nothing here")
	}
	s := newTestStore(t)
	ctx := context.Background()
	rng := rand.New(rand.NewPCG(3, 4))
	var hs []index.Hash
	var contents [][]byte
	for range 600 {
		b := make([]byte, 16<<10) // incompressible: 16 KiB of the database each
		for i := range b {
			b[i] = byte(rng.Uint32())
		}
		h, _, err := s.PutReader(ctx, bytes.NewReader(b))
		if err != nil {
			t.Fatal(err)
		}
		hs, contents = append(hs, h), append(contents, b)
	}
	if err := s.Sync(); err != nil {
		t.Fatal(err)
	}
	readAll := func() {
		t.Helper()
		for i, h := range hs {
			r, err := s.Open(ctx, h)
			if err != nil {
				t.Fatal(err)
			}
			got, err := io.ReadAll(r)
			r.Close()
			if err != nil || !bytes.Equal(got, contents[i]) {
				t.Fatalf("blob %d reads back wrong (%v)", i, err)
			}
		}
	}
	readAll()
	// reads of one blob at a time drop their pages as they go (see
	// TestBlobReadsDropMappedPages): map them all in one transaction
	var sum int
	if err := s.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bktBlobs).ForEach(func(_, v []byte) error {
			for i := 0; i < len(v); i += 512 {
				sum += int(v[i])
			}
			return nil
		})
	}); err != nil {
		t.Fatal(err)
	}
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
	readAll()
	t.Logf("meta.db resident: %d KiB after reading every blob, %d KiB after ReleaseMapped (sum %d)", before>>10, after>>10, sum)
}

// TestMissingDropsMappedPages: a pass over many small blobs (Missing of
// every blob) does not leave the whole database resident: the pages it
// mapped are dropped every dropEvery lookups (a 100k-file generation's
// blob check mapped the whole 150-180 MB database at once, the agents'
// peak RSS).
func TestMissingDropsMappedPages(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("ReleaseMapped does nothing here")
	}
	s, hs, size := smallBlobStore(t, 5, 3000)
	if miss := s.Missing(hs); len(miss) != 0 {
		t.Fatalf("%d blobs missing", len(miss))
	}
	got := mappedRSS(t, "meta.db")
	t.Logf("meta.db: %d KiB, resident after Missing of every blob: %d KiB", size>>10, got>>10)
	if got > size/3 {
		t.Fatalf("Missing of every blob left %d KiB of the %d KiB database resident", got>>10, size>>10)
	}
}

// TestPutsDropMappedPages: storing many small blobs (an initial sync's
// content, put in batches into the blobs bucket, each put reading its
// leaf page through the map) does not leave the database resident: the
// puts drop the pages they mapped as they go (without that, the source's
// store phase of a 100k sync mapped the whole database between two runs
// of the agent's 2-second ReleaseMapped).
func TestPutsDropMappedPages(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("ReleaseMapped does nothing here")
	}
	s := newTestStore(t)
	ctx := context.Background()
	rng := rand.New(rand.NewPCG(7, 8))
	for round := range 4 {
		for range 1000 {
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
	st, err := os.Stat(s.dbPath())
	if err != nil {
		t.Fatal(err)
	}
	got := mappedRSS(t, "meta.db")
	t.Logf("meta.db: %d KiB, resident after storing its blobs: %d KiB", st.Size()>>10, got>>10)
	if got > st.Size()/3 {
		t.Fatalf("storing the blobs left %d KiB of the %d KiB database resident", got>>10, st.Size()>>10)
	}
}

// TestBlobReadsDropMappedPages: serving small blobs one at a time (a
// source answering an initial sync's fetches) does not map the database
// into the resident set: a read through the map makes the kernel map the
// neighbouring pages too (fault-around, 64 KiB a fault), so a few hundred
// reads of 1.5 KB blobs mapped the whole file; at 100k files the source's
// fetch serving kept 150-170 MB of it resident between two runs of the
// agent's 2-second ReleaseMapped.
func TestBlobReadsDropMappedPages(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("ReleaseMapped does nothing here")
	}
	s, hs, size := smallBlobStore(t, 9, 4000)
	ctx := context.Background()
	rng := rand.New(rand.NewPCG(9, 10))
	const reads = 300
	for _, i := range rng.Perm(len(hs))[:reads] {
		r, err := s.Open(ctx, hs[i])
		if err != nil {
			t.Fatal(err)
		}
		if _, err := io.Copy(io.Discard, r); err != nil {
			t.Fatal(err)
		}
		r.Close()
	}
	got := mappedRSS(t, "meta.db")
	t.Logf("meta.db: %d KiB, resident after reading %d of its blobs: %d KiB", size>>10, reads, got>>10)
	if got > size/4 {
		t.Fatalf("reading %d blobs left %d KiB of the %d KiB database resident", reads, got>>10, size>>10)
	}
}
