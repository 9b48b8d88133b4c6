package store

import (
	"fmt"

	bolt "go.etcd.io/bbolt"

	"pbxsync/internal/index"
	"pbxsync/internal/procmaps"
)

// ReleaseMapped takes the pages of the metadata database that this process
// has read through bbolt's memory map out of its resident set (RSS). The
// database is mapped read-only and shared, so its pages are the file's
// page cache: every page a lookup, a blob read or a commit's page walk
// touched stays counted in the agent's RSS for as long as it runs (at
// 100,000 small files the whole 150-180 MB file, more than the Go heap).
// Dropping the mapping of a shared file page loses nothing: the page
// stays in the page cache (the kernel keeps or evicts it as for any file)
// and the next read maps it again with a minor fault. It costs one
// madvise(MADV_DONTNEED) over the database (procmaps.DropPages), done under a read
// transaction so that bbolt cannot remap the file meanwhile. Elsewhere
// than on Linux it does nothing.
func (s *Store) ReleaseMapped() error {
	if err := s.releaseMapped(); err != nil {
		return fmt.Errorf("store: release the mapped database: %w", err)
	}
	return nil
}

// releaseAfterBlobs is the number of blobs from which the commit that
// writes them is followed by releaseMapped: it touched the old page of
// every node it rewrote, thousands for a batch of an initial sync.
const releaseAfterBlobs = 64

// releaseAfterPages is the number of page writes (runs of pages, as
// bbolt counts them) that commits made since the last drop from which a
// commit is followed by releaseMapped too, whatever they wrote (the items
// of a chunk of a large generation, a journal, scan states, a fetch's
// many small batches of blobs): each page written is a node whose old
// page the commit read through the map. At 256 the target of a 100k
// initial sync held up to 24 MiB of such pages while it wrote its
// journal's parts; at 64 its peak RSS was 5-9 MiB lower in alternating
// runs, at the same CPU.
const releaseAfterPages = 64

func (s *Store) releaseMapped() error {
	return s.view(func(tx *bolt.Tx) error {
		return procmaps.DropPages(tx.DB().Info().Data, tx.Size())
	})
}

// dropEvery is how many blob lookups a pass over many blobs (the blob
// check of a 100,000-file generation, Missing) makes between dropping the
// database pages it mapped: small blobs are values in the blobs bucket's
// leaves, so such a pass touches most of the database at once (the whole
// 150-180 MB file at 100k small files, counted in the agent's peak RSS
// however soon ReleaseMapped runs after it).
const dropEvery = 2048

// lookedUp counts one blob looked up on its own (Has, a blob's read) and
// drops the mapped pages every dropEvery of them: a fetch or an apply of
// 100,000 files looks up each blob on its own, at random places of the
// packed bucket, and mapped 15-20 MiB of the database between two runs of
// the agent's ReleaseMapped.
func (s *Store) lookedUp() {
	if s.lookups.Add(1)%dropEvery == 0 {
		_ = s.releaseMapped()
	}
}

// mappedPass counts the lookups of one pass inside tx and drops the
// mapped pages every dropEvery of them. Inside a transaction bbolt does
// not remap the file behind the caller's back: a read transaction holds
// the remap lock, and a write transaction remaps only in its own calls.
type mappedPass struct {
	tx     *bolt.Tx
	n      int
	walked int // bytes of keys and values walked since the last drop
}

// walkDrop is how many bytes of keys and values a walk over a bucket in
// key order (reading items or scan states back) reads between two drops
// of the mapped pages. A walk maps each page once, so a drop every 2,048
// keys bounded what it mapped but cost it as much again (49 drops and the
// faults after each: reading 100,000 items and their scan states back
// took 82-87 ms, not 45-50: BenchmarkReadBack).
const walkDrop = 2 << 20

// walk notes n bytes of keys and values read by a walk in key order and
// drops the mapped pages every walkDrop of them.
func (m *mappedPass) walk(n int) {
	if m.walked += n; m.walked >= walkDrop {
		m.walked = 0
		m.drop()
	}
}

// touched notes one lookup.
func (m *mappedPass) touched() {
	m.n++
	if m.n%dropEvery == 0 {
		m.drop()
	}
}

// drop drops the mapped pages now, as a pass over many keys ends.
func (m *mappedPass) drop() {
	_ = procmaps.DropPages(m.tx.DB().Info().Data, m.tx.Size())
}

// check is s.hasTx(m.tx, h), counted as a lookup of the pass.
func (m *mappedPass) check(s *Store, h index.Hash) bool {
	m.touched()
	return s.hasTx(m.tx, h)
}
