package store

import (
	"fmt"

	bolt "go.etcd.io/bbolt"
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
// madvise(MADV_DONTNEED) over the database, done under a read
// transaction so that bbolt cannot remap the file meanwhile. Elsewhere
// than on Linux it does nothing.
func (s *Store) ReleaseMapped() error {
	err := s.view(func(tx *bolt.Tx) error {
		return dropMapped(tx.DB().Info().Data, tx.Size())
	})
	if err != nil {
		return fmt.Errorf("store: release the mapped database: %w", err)
	}
	return nil
}
