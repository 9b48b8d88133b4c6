package syncer

import (
	"context"
	"errors"
	"sync"

	"pbxsync/internal/index"
	"pbxsync/internal/wire"
)

// relayFetchMore makes sure this relay holds the further contents of a
// batched request (Get.More) of peer, a target of its site, before it
// serves them (serveMore sends stored content only): the missing ones are
// fetched from the source, fetchParallel at a time, each once however
// many targets ask for it (relayFetch). Without it a relay that lacks
// them (it refused or holds the generation) answers the batch with an
// error after its first content, and the target fetches the rest one
// stream per file. On a source, or for a peer it does not relay for, it
// does nothing.
func (j *job) relayFetchMore(ctx context.Context, peer string, more [][]byte) error {
	if len(more) == 0 || j.isSource || !j.relaysFor(peer) {
		return nil
	}
	sem := make(chan struct{}, fetchParallel)
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		errs []error
	)
	for _, b := range more {
		h := wire.HashOf(b)
		j.mu.Lock()
		size, ok := j.serving.get(h)
		j.mu.Unlock()
		if !ok || j.a.store.Has(h) {
			continue // serveMore refuses what is not offered
		}
		sem <- struct{}{}
		wg.Add(1)
		go func(h index.Hash, size int64) {
			defer func() { <-sem; wg.Done() }()
			// the relay knows content by hash only here: the hash names it
			if err := j.relayFetch(ctx, peer, h.String(), h, size); err != nil {
				mu.Lock()
				errs = append(errs, err)
				mu.Unlock()
			}
		}(h, size)
	}
	wg.Wait()
	return errors.Join(errs...)
}
