package syncer

import (
	"context"
	"runtime/debug"
	"time"
)

// largeGeneration is the number of changed paths from which a generation
// counts as large (an initial sync of a big job): once it is done, the
// memory its messages, lists and copies took is handed back to the system
// at once (releaseMemory), instead of staying in the process's heap, and
// in its RSS, for minutes.
const largeGeneration = 10000

// releaseMemory lets go of the store's pooled codecs, runs a garbage
// collection and returns freed memory to the system. It costs one
// collection; it runs after a large generation only.
func (j *job) releaseMemory() {
	j.a.store.ReleaseCodecs()
	debug.FreeOSMemory()
}

// noteGeneration marks the job for releaseMemory when a generation of n
// changed paths is large.
func (j *job) noteGeneration(n int) {
	if n >= largeGeneration {
		j.release = true
	}
}

// releaseMappedEvery is how often the agent takes the store's database
// pages it has read out of its resident set (Store.ReleaseMapped): a large
// initial sync reads and writes the whole database, which would otherwise
// stay counted in the agent's RSS (150-180 MB at 100,000 small files).
// The pages stay in the page cache; a one-file change maps back the few
// dozen it reads.
const releaseMappedEvery = 2 * time.Second

// releaseMappedLoop calls Store.ReleaseMapped every releaseMappedEvery
// until ctx is done.
func (a *Agent) releaseMappedLoop(ctx context.Context) {
	t := time.NewTicker(releaseMappedEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if err := a.store.ReleaseMapped(); err != nil && ctx.Err() == nil {
			a.log.Debug("cannot release the store's mapped pages", "err", err)
		}
	}
}
