package store

import (
	"slices"

	bolt "go.etcd.io/bbolt"

	"pbxsync/internal/index"
)

// PackedContent is the largest content whose blob this store always keeps
// among the small ones (pending, in a pack, or in the database from before
// packs), never as a file under blobs/: zstd's worst case for 60 KiB
// (incompressible content: its bytes, 1/256 of them more, a block header
// and a frame header and checksum, ~300 bytes) fits SmallBlob.
const PackedContent = 60 << 10

// Lacking reports for each of hs whether the store lacks it (lack[i] for
// hs[i]), in one read transaction that looks the blobs up in hash order,
// the lookups of a batch that Has made one transaction each. sizes[i] is
// the size of hs[i]'s content as its announcer stated it: a blob of at
// most PackedContent bytes is looked for among the small blobs only, with
// no stat of blobs/ (a target's check of an offer frame made 256 stats
// that all failed). A small blob kept as a file (a peer's compressed frame
// that is larger than SmallBlob although its content is small, a size
// misstated) is then reported lacking: Lacking is for callers to whom that
// costs one redundant fetch, never for deciding what content is durable
// (use Has or Missing for that).
func (s *Store) Lacking(hs []index.Hash, sizes []int64) []bool {
	lack := make([]bool, len(hs))
	if s.usable() != nil {
		for i := range lack {
			lack[i] = true
		}
		return lack
	}
	order := make([]int, 0, len(hs))
	s.pendMu.Lock()
	for i, h := range hs {
		if _, ok := s.pending[h]; !ok {
			order = append(order, i)
		}
	}
	s.pendMu.Unlock()
	if len(order) == 0 {
		return lack
	}
	// in hash order: the lookups walk the packed bucket's pages in order,
	// and blobFiles reads a blob directory once for many of its hashes
	slices.SortFunc(order, func(a, b int) int { return compareHashes(hs[a], hs[b]) })
	var large []index.Hash
	for _, i := range order {
		if sizes[i] > PackedContent {
			large = append(large, hs[i])
		}
	}
	files := s.newBlobFiles(large)
	err := s.db.View(func(tx *bolt.Tx) error {
		pass := mappedPass{tx: tx}
		small := newSmallLookup(tx)
		for _, i := range order {
			pass.touched()
			h := hs[i]
			lack[i] = !small.has(h) && (sizes[i] <= PackedContent || !files.exists(h))
		}
		return nil
	})
	if err != nil {
		for _, i := range order {
			lack[i] = true
		}
	}
	return lack
}
