package store

import (
	"os"
	"path/filepath"
	"testing"

	bolt "go.etcd.io/bbolt"

	"pbxsync/internal/index"
)

// unpack turns s into a store as written before pack files: every small
// blob a value of bucket blobs, no packs.
func unpack(t *testing.T, s *Store) {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	err := s.db.Update(func(tx *bolt.Tx) error {
		packed := tx.Bucket(bktPacked)
		var keys [][]byte
		if err := packed.ForEach(func(k, _ []byte) error {
			keys = append(keys, k)
			return nil
		}); err != nil {
			return err
		}
		for _, k := range keys {
			var h index.Hash
			copy(h[:], k)
			l, _, err := getLoc(tx, h)
			if err != nil {
				return err
			}
			s.packMu.RLock()
			data, err := s.readPack(h, l)
			s.packMu.RUnlock()
			if err != nil {
				return err
			}
			if err := tx.Bucket(bktBlobs).Put(h[:], data); err != nil {
				return err
			}
			if err := packed.Delete(k); err != nil {
				return err
			}
		}
		if err := tx.DeleteBucket(bktPacks); err != nil {
			return err
		}
		_, err := tx.CreateBucket(bktPacks)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	s.closePacks()
	ps, _ := filepath.Glob(filepath.Join(s.packsDir(), "*.pack"))
	for _, p := range ps {
		if err := os.Remove(p); err != nil {
			t.Fatal(err)
		}
	}
}
