package store

import (
	"math/rand/v2"
	"os"
	"testing"

	"pbxsync/internal/index"
)

// TestLacking: Lacking agrees with Has for small blobs (pending and
// packed), large blob files and absent hashes, given their sizes; the
// largest incompressible content it looks for among the small blobs only
// (PackedContent) is kept in a pack; and a small content is not looked
// for under blobs/ (a file planted there for it is not seen: no stat).
func TestLacking(t *testing.T) {
	s := newTestStore(t)
	small, _ := putRandom(t, s, 1, 20, 1500)
	edge, _ := putRandom(t, s, 2, 2, PackedContent) // incompressible
	large, _ := putRandom(t, s, 3, 3, SmallBlob+1024)
	if err := s.Sync(); err != nil {
		t.Fatal(err)
	}
	pending, _ := putRandom(t, s, 4, 2, 700)
	for _, h := range edge {
		if fileExists(s.BlobPath(h)) {
			t.Fatalf("a blob of %d incompressible bytes (PackedContent) is a file under blobs/; PackedContent is too large", PackedContent)
		}
	}
	rng := rand.New(rand.NewPCG(7, 8))
	absent := make([]index.Hash, 40)
	for i := range absent {
		for j := range absent[i] {
			absent[i][j] = byte(rng.Uint32())
		}
	}
	var hs []index.Hash
	var sizes []int64
	add := func(list []index.Hash, size int64) {
		for _, h := range list {
			hs, sizes = append(hs, h), append(sizes, size)
		}
	}
	add(small, 1500)
	add(edge, PackedContent)
	add(large, SmallBlob+1024)
	add(pending, 700)
	add(absent[:20], 100)
	add(absent[20:], 1<<20)
	add(small[:3], 1500) // twice
	lack := s.Lacking(hs, sizes)
	for i, h := range hs {
		if lack[i] == s.Has(h) {
			t.Errorf("blob %s (%d bytes): Lacking says %v, Has %v", h.Short(), sizes[i], lack[i], s.Has(h))
		}
	}

	// a file under blobs/ for a small content: Lacking does not stat it
	planted := absent[0]
	if err := os.WriteFile(s.BlobPath(planted), []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	if got := s.Lacking([]index.Hash{planted}, []int64{100}); !got[0] {
		t.Errorf("Lacking of a small content looked under blobs/ (it found the file planted there)")
	}
	if got := s.Lacking([]index.Hash{planted}, []int64{1 << 20}); got[0] {
		t.Errorf("Lacking of a large content did not find its blob file")
	}
	if got := s.Lacking(nil, nil); len(got) != 0 {
		t.Errorf("Lacking of nothing: %v", got)
	}
}

// BenchmarkOfferFrameCheck: an offer frame's check (256 hashes the store
// lacks, small content) as Has each (before) and as one Lacking.
func BenchmarkOfferFrameCheck(b *testing.B) {
	s, err := Open(b.TempDir(), nil, WithGCGrace(0))
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	rng := rand.New(rand.NewPCG(9, 10))
	hs := make([]index.Hash, 256)
	sizes := make([]int64, len(hs))
	for i := range hs {
		for j := range hs[i] {
			hs[i][j] = byte(rng.Uint32())
		}
		sizes[i] = 1500
	}
	b.Run("Has", func(b *testing.B) {
		for b.Loop() {
			for _, h := range hs {
				_ = s.Has(h)
			}
		}
	})
	b.Run("Lacking", func(b *testing.B) {
		for b.Loop() {
			_ = s.Lacking(hs, sizes)
		}
	})
}
