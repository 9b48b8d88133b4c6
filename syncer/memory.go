package syncer

import (
	"context"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"time"

	"pbxsync/internal/procmaps"
)

// largeGeneration is the number of changed paths from which a generation
// counts as large (an initial sync of a big job): once it is done, the
// memory its messages, lists and copies took is handed back to the system
// at once (releaseMemory), instead of staying in the process's heap, and
// in its RSS, for minutes.
const largeGeneration = 10000

// releaseMemory lets go of the codecs' state (see releaseCodecs), runs a
// garbage collection and returns freed memory to the system. It costs
// one collection; it runs after a large generation, and when a target
// lets go of its spare index.
func (j *job) releaseMemory() {
	j.a.releaseCodecs()
	freeHeap()
}

// releaseCodecs lets go of the store's pooled codecs and of the wire
// codec's encoder state (its history and block buffers grown by large
// announcements, ~1.4 MiB beside the 1.35 MiB of match tables the next
// compressed frame makes again: a State every publishMax while idle).
func (a *Agent) releaseCodecs() {
	a.store.ReleaseCodecs()
	if a.mon != nil {
		a.mon.Codec().Release()
	}
}

// growMemory tells Options.Memory that about bytes are about to be
// allocated and kept (see MemoryBudget.Grow). A nil a (a job a test made
// alone) tells nothing.
func (a *Agent) growMemory(bytes int64) (done func()) {
	if a == nil || a.memory == nil {
		return func() {}
	}
	return a.memory.Grow(bytes)
}

// freeHeap collects twice and returns the free memory to the system.
// The first collection moves what sync.Pools hold to their victim
// caches, the second (debug.FreeOSMemory's) lets go of them: one would
// leave the buffers a large sync pooled held until the agent's next
// collections (encoding/json's buffer of a whole announcement part, 4
// MiB at 100,000 files, in the idle source's heap). The second costs
// less than the first: the garbage is gone by then. It lets go of the
// executable's pages the busy spell ran too (procmaps.ReleaseExecutable):
// what the idle agent runs next maps back from the page cache.
func freeHeap() {
	runtime.GC()
	debug.FreeOSMemory()
	_, _ = procmaps.ReleaseExecutable() // off Linux, or without /proc: nothing to let go of
}

// noteGeneration marks the job for releaseMemory when a generation of n
// changed paths is large (and has it park its index soon after, see
// parkAfterLarge).
func (j *job) noteGeneration(n int) {
	j.park.afterLarge = n >= largeGeneration
	if n >= largeGeneration {
		j.release = true
	}
}

// releaseMappedEvery is how often the agent takes the store's database
// pages it has read out of its resident set (Store.ReleaseMapped): a large
// initial sync reads and writes the whole database, which would otherwise
// stay counted in the agent's RSS (150-180 MB at 100,000 small files).
// The pages stay in the page cache; a one-file change maps back the few
// dozen it reads. Every 2 s, what the single blob lookups of a 100k
// fetch mapped between two of the store's own drops (up to 11 MiB of
// meta.db) stayed resident for up to that long, and was a target's peak
// RSS where it met the peak of its heap; a release costs a read
// transaction and one madvise (tens of microseconds).
const releaseMappedEvery = 250 * time.Millisecond

// heapSampleEvery is how often the agent samples its heap for
// idleRelease.
const heapSampleEvery = 2 * time.Second

// releaseMappedLoop calls Store.ReleaseMapped every releaseMappedEvery
// until ctx is done, and hands the heap memory a busy spell left behind
// back to the system once the agent is quiet (see idleRelease, sampled
// every heapSampleEvery).
func (a *Agent) releaseMappedLoop(ctx context.Context) {
	t := time.NewTicker(releaseMappedEvery)
	defer t.Stop()
	sample := time.NewTicker(heapSampleEvery)
	defer sample.Stop()
	var idle idleRelease
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if err := a.store.ReleaseMapped(); err != nil && ctx.Err() == nil {
				a.log.Debug("cannot release the store's mapped pages", "err", err)
			}
			continue
		case <-sample.C:
		}
		if idle.note(readHeapSample()) {
			a.releaseCodecs()
			freeHeap()
			a.log.Debug("returned the memory of a busy spell to the system")
		}
	}
}

// heapSample is what the agent reads of the Go runtime's heap every
// releaseMappedEvery.
type heapSample struct {
	allocs uint64 // bytes allocated since the process started
	held   uint64 // heap memory mapped and not returned: live objects, garbage, free spans
	live   uint64 // live heap after the last collection
}

// heapMetrics are the runtime/metrics names of heapSample's fields (held
// is the sum of the last three).
var heapMetrics = []string{
	"/gc/heap/allocs:bytes",
	"/gc/heap/live:bytes",
	"/memory/classes/heap/objects:bytes",
	"/memory/classes/heap/unused:bytes",
	"/memory/classes/heap/free:bytes",
}

// readHeapSample reads the runtime's heap metrics (a few microseconds,
// no stop of the world).
func readHeapSample() heapSample {
	s := make([]metrics.Sample, len(heapMetrics))
	for i, name := range heapMetrics {
		s[i].Name = name
	}
	metrics.Read(s)
	v := func(i int) uint64 {
		if s[i].Value.Kind() != metrics.KindUint64 {
			return 0
		}
		return s[i].Value.Uint64()
	}
	return heapSample{allocs: v(0), live: v(1), held: v(2) + v(3) + v(4)}
}

// Once a large sync is done, its garbage and the free spans it leaves
// stay in the agent's resident set: the collector's next cycle waits for
// the heap to double, and the runtime returns free memory to the system
// slowly (the target of a 100,000-file initial sync still held 159 MiB
// of anonymous memory two minutes after it, over a heap of 45-52 MiB in
// use: the large generation's own release, releaseMemory, came before the
// work that followed it). The agent hands it back, with one
// collection (debug.FreeOSMemory), when it has been quiet for
// quietSamples samples in a row after a busy spell: releaseSlack more heap
// held than used, or busySpellBytes allocated since the last release, and
// at least quietAllocBytes allocated since it (a heap whose spans hold
// releaseSlack of fragments is not collected again and again). The slack
// was 16 MiB: a few one-line edits of a 100,000-file job left 4-5 MiB
// more held than live in the idle source, below it, and the collector's
// own scavenger keeps up to the next heap goal (twice the live heap).
const (
	quietAllocBytes = 1 << 20  // at most this much allocated between two samples counts as quiet
	quietSamples    = 2        // samples in a row that must be quiet (4 s)
	releaseSlack    = 4 << 20  // held beyond the live heap worth one collection
	busySpellBytes  = 64 << 20 // allocated since the last release worth one
)

// idleRelease decides from successive heap samples when to release.
type idleRelease struct {
	last     heapSample
	quiet    int    // quiet samples in a row up to last
	released uint64 // allocs at the last release
	seen     bool
}

// note takes the next sample and reports whether to release now: see
// quietSamples. A release starts a new count: it allocates nothing, so it
// is not repeated before the agent was busy again.
func (r *idleRelease) note(s heapSample) bool {
	quiet := r.seen && s.allocs-r.last.allocs <= quietAllocBytes
	r.last, r.seen = s, true
	if !quiet {
		r.quiet = 0
		return false
	}
	r.quiet++
	since := s.allocs - r.released
	busy := since >= quietAllocBytes && (s.held >= s.live+releaseSlack || since >= busySpellBytes)
	if r.quiet < quietSamples || !busy {
		return false
	}
	r.quiet, r.released = 0, s.allocs
	return true
}
