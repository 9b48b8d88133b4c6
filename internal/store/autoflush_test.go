package store

import (
	"sync"
	"testing"

	bolt "go.etcd.io/bbolt"
)

// TestConcurrentPutsShareCommits: puts from several goroutines (a target's
// fetch workers) make a full batch durable in one commit, not one commit
// per goroutine that found the batch full while it was being flushed.
func TestConcurrentPutsShareCommits(t *testing.T) {
	t.Parallel()
	s := newTestStore(t)
	txid := func() uint64 {
		var id uint64
		if err := s.db.View(func(tx *bolt.Tx) error { id = uint64(tx.ID()); return nil }); err != nil {
			t.Fatal(err)
		}
		return id
	}
	const (
		workers = 8
		each    = 60
		size    = 20 << 10 // random: stored as it is, a batch every ~200 puts
	)
	before := txid()
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				put(t, s, randBytes(uint64(w*each+i+1), size))
			}
		}()
	}
	wg.Wait()
	commits := txid() - before
	full := uint64(workers * each * size / flushPendingBytes)
	t.Logf("%d puts of %d KiB: %d commits, %d full batches", workers*each, size>>10, commits, full)
	if commits > full+1 {
		t.Errorf("%d commits for %d full batches: puts that found a batch full while it was flushed committed on their own", commits, full)
	}
}
