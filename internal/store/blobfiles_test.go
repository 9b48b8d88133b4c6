package store

import (
	"math/rand/v2"
	"slices"
	"testing"

	"pbxsync/internal/index"
)

// TestMissingListsBlobDirs: a pass over many hashes (a target's check of
// the content it is about to fetch) reads each blob directory once instead
// of one stat per hash, and still tells blob files, packed blobs and
// absent ones apart; a pass over a few hashes stats them.
func TestMissingListsBlobDirs(t *testing.T) {
	s := newTestStore(t)
	large, _ := putRandom(t, s, 1, 40, SmallBlob+1024) // files under blobs/
	small, _ := putRandom(t, s, 2, 40, 1500)           // in packs
	rng := rand.New(rand.NewPCG(3, 4))
	absent := make([]index.Hash, 8192) // ~32 per blob directory
	for i := range absent {
		for j := range absent[i] {
			absent[i][j] = byte(rng.Uint32())
		}
	}
	all := slices.Concat(large, small, absent)

	miss := s.Missing(all)
	slices.SortFunc(miss, compareHashes)
	want := slices.Clone(absent)
	slices.SortFunc(want, compareHashes)
	if !slices.Equal(miss, want) {
		t.Fatalf("Missing found %d of %d hashes missing, want the %d absent ones", len(miss), len(all), len(absent))
	}

	sorted := slices.Clone(all)
	slices.SortFunc(sorted, compareHashes)
	files := s.newBlobFiles(sorted)
	for _, h := range sorted {
		if got, want := files.exists(h), fileExists(s.BlobPath(h)); got != want {
			t.Fatalf("blob %s: exists %v, a stat says %v", h.Short(), got, want)
		}
	}
	t.Logf("a pass over %d hashes: %d blob directories read, %d stats", len(sorted), files.lists, files.stats)
	if files.lists > 256 || files.stats > len(sorted)/4 {
		t.Errorf("a pass over %d hashes read %d blob directories and made %d stats; want each directory read once and few stats", len(sorted), files.lists, files.stats)
	}

	few := []index.Hash{large[0], small[0], absent[0]}
	slices.SortFunc(few, compareHashes)
	files = s.newBlobFiles(few)
	for _, h := range few {
		if got, want := files.exists(h), fileExists(s.BlobPath(h)); got != want {
			t.Fatalf("blob %s: exists %v, a stat says %v", h.Short(), got, want)
		}
	}
	if files.lists != 0 || files.stats != len(few) {
		t.Errorf("a pass over %d hashes read %d blob directories and made %d stats; want a stat each", len(few), files.lists, files.stats)
	}
}
