package syncer

import (
	"errors"
	"fmt"
	"time"

	"pbxsync/internal/config"
	"pbxsync/internal/index"
)

// defaultParkMin is the smallest newest index a job parks
// (Options.ParkMin): below it the index is small (~120 bytes a path) and
// reading it back would cost more than it frees.
const defaultParkMin = largeGeneration

// parkAfterLarge is how long a job idles after the events of a large
// generation (largeGeneration paths changed) before it parks its index.
const parkAfterLarge = 2 * time.Second

// indexPark is what the job loop knows to park its newest index: let go
// of the index once the job has been idle for Options.SpillIdle, and read
// it back from the store, which holds every recorded generation, at the
// next event that needs it (wake). A 100,000-file index is ~15 MB of
// heap, most of an idle agent's; reading it back costs 24-35 ms alone
// (store's BenchmarkGenerationRead) and ~100 ms inside an agent (its
// pages and the heap's faulted back in, a collection), once after an
// idle spell.
type indexPark struct {
	since  time.Time    // when the job last used its index (or it changed)
	parked *parkedIndex // what was let go of; nil while the index is in memory
	err    error        // reading it back failed: the job loop stops and starts over
	// afterLarge: the newest generation noted was large (noteGeneration)
	afterLarge bool
}

// itemBytes is about the heap an item of an index read back from the
// store takes: its item (96 bytes) and table slots (16-21) in the index,
// and its path (~32): ~15 MB for 100,000 items.
const itemBytes = 160

// parkedIndex is what a parked index is read back into.
type parkedIndex struct {
	n         int             // its items
	digest    index.SetDigest // its digest (the digest cache is keyed by the index)
	drift     bool            // j.drift.base was it
	announced bool            // j.announced was it (a target's identity admission)
	recorded  bool            // j.recorded, another Generation value, held it too
}

// errParkedLost says that an index read back from the store is not the
// one let go of.
var errParkedLost = errors.New("the index read back is not the one let go of")

// canPark reports whether the job may let go of its newest index now:
// a push files job whose newest index is large and that holds no other
// index of that size or work that uses it (an apply to retry, a spare in
// use, an announcement being taken or made, a large generation's
// clean-up, a save of its scan state). Mesh jobs keep theirs (their
// machine holds the index in several places; see mesh.go).
func (j *job) canPark() bool {
	g := j.latest
	return j.kind == nil && j.mesh == nil && j.cfg.Mode == config.ModePush &&
		g != nil && !g.Index.IsNil() && g.Index.Len() >= j.parkMin() &&
		j.retry == nil && j.spare.use == nil && j.scanSave == nil && !j.release &&
		j.admitting.announced.IsNil() && j.taking.Load() == nil && j.fed.onward == nil &&
		(j.announced.IsNil() || j.announced.Same(g.Index)) &&
		(j.drift.base.IsNil() || j.drift.base.Same(g.Index))
}

// parkMin is Options.ParkMin or its default.
func (j *job) parkMin() int {
	if j.a.parkMin > 0 {
		return j.a.parkMin
	}
	return defaultParkMin
}

// parkIdleIndex parks the newest index once the job has not used it for
// Options.SpillIdle (see indexPark), moves a source's served set's base
// into a file (servedFile) and hands the memory back to the system.
func (j *job) parkIdleIndex(now time.Time) {
	p := &j.park
	if p.parked != nil || !j.canPark() {
		return
	}
	idle := j.a.idleSpell()
	if p.afterLarge {
		// an initial sync or another large change: the job is idle once
		// its last answer is in, and the index is all it holds
		idle = min(idle, parkAfterLarge)
	}
	if p.since.IsZero() || now.Sub(p.since) < idle {
		if p.since.IsZero() {
			p.since = now
		}
		return
	}
	g := j.latest
	pk := &parkedIndex{n: g.Index.Len(), digest: j.digests.of(g.Index),
		drift: !j.drift.base.IsNil(), announced: !j.announced.IsNil()}
	if r := j.recorded; r != nil && r != g {
		if r.Index.Same(g.Index) {
			pk.recorded, r.Index = true, index.Index{}
		} else {
			j.recorded = nil // the next generation is recorded against the store's newest
		}
	}
	g.Index = index.Index{}
	if pk.drift {
		j.drift.base = index.Index{}
	}
	if pk.announced {
		j.announced = index.Index{}
	}
	j.spare = spareIndex{}
	j.announcements, j.announceItems = nil, nil
	j.digests = digestCache{}
	p.parked = pk
	j.log.Debug("let go of the newest index while idle", "generation", g.Number, "items", pk.n)
	j.mu.Lock()
	if j.isSource && j.serving.len() >= j.parkMin() {
		if err := j.serving.spill(j.a.store.Dir()); err != nil {
			j.log.Debug("keeping the served set in memory", "err", err)
		}
	}
	j.mu.Unlock()
	j.releaseMemory()
}

// checkServed makes the served set again from the newest index when its
// file could not be read (its base then serves nothing): a target asking
// for content in between is told it is not served and asks again.
func (j *job) checkServed() {
	j.mu.Lock()
	err := j.serving.failed()
	j.mu.Unlock()
	if err == nil || !j.wake() {
		return
	}
	j.log.Error("the served set moved out of memory cannot be read; making it again", "err", err)
	j.offer(j.latest.Index, j.prev.items())
}

// wake reads a parked index back from the store and puts it where it was.
// It returns false when that failed (j.park.err): the job loop then stops
// and the job starts over from the store.
func (j *job) wake() bool {
	p := &j.park
	p.since = time.Now()
	pk := p.parked
	if pk == nil {
		return p.err == nil
	}
	g := j.latest
	done := j.a.growMemory(int64(pk.n) * itemBytes)
	read, err := j.a.store.GenerationIndex(j.cfg.Name, g.Number)
	done()
	if err == nil && read.Index.Len() != pk.n {
		err = fmt.Errorf("%w: %d items, %d let go of", errParkedLost, read.Index.Len(), pk.n)
	}
	if err != nil {
		p.err = fmt.Errorf("read the newest index (generation %d) back from the store: %w", g.Number, err)
		j.log.Error("cannot read the newest index back from the store; starting the job over", "err", p.err)
		return false
	}
	x := read.Index
	g.Index = x
	if pk.recorded && j.recorded != nil {
		j.recorded.Index = x
	}
	if pk.drift {
		j.drift.base = x
	}
	if pk.announced {
		j.announced = x
	}
	j.digests.put(x, pk.digest)
	p.parked = nil
	j.log.Debug("read the newest index back", "generation", g.Number, "items", pk.n, "took", time.Since(p.since))
	return true
}
