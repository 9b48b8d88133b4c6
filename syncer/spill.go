package syncer

import (
	"context"
	"time"

	"pbxsync/hostmon"
)

// defaultSpillIdle is how long a job's scan state goes unchanged before
// it is moved out of memory (Options.SpillIdle).
const defaultSpillIdle = 10 * time.Second

// idleSpell is Options.SpillIdle or its default: how long a job goes
// unchanged before its scan state moves out of memory, and without an
// event before it lets go of its newest index (park.go).
func (a *Agent) idleSpell() time.Duration {
	if a.spillIdle > 0 {
		return a.spillIdle
	}
	return defaultSpillIdle
}

// statesSpill is what the job loop knows of its scan state's changes, to
// tell when it has been idle long enough to spill.
type statesSpill struct {
	states  *hostmon.States // the States seen (a new one starts over)
	changes uint64          // its Changes then
	since   time.Time       // when they were seen to change last
	fails   int             // spills failed in a row (a full disk): each waits twice as long
}

// maxSpillWait bounds the wait before a spill is tried again after
// failures.
const maxSpillWait = 10 * time.Minute

// spillIdleStates moves the job's scan state out of memory once it has
// not changed for Options.SpillIdle (hostmon.States.Spill): between
// events a job reads it a few paths at a time, from a file in the store's
// directory that nobody else sees. A spilled scan state that cannot be
// read is dropped and the tree scanned again in full.
func (j *job) spillIdleStates(ctx context.Context, now time.Time) {
	s := j.states
	if err := s.Err(); err != nil {
		j.log.Error("cannot read the scan state moved out of memory; rescanning everything", "err", err)
		j.states, j.spill = nil, statesSpill{}
		j.onLocalChange(ctx, hostmon.Change{Rescan: true})
		return
	}
	sp := &j.spill
	if s == nil || s.Spilled() {
		return
	}
	if c := s.Changes(); sp.states != s || sp.changes != c {
		sp.states, sp.changes, sp.since = s, c, now
		return
	}
	if now.Sub(sp.since) < min(j.a.idleSpell()<<sp.fails, maxSpillWait) {
		return
	}
	if err := s.Spill(j.a.store.Dir()); err != nil {
		if sp.fails == 0 {
			j.log.Warn("cannot move the scan state out of memory; keeping it", "err", err)
		} else {
			j.log.Debug("cannot move the scan state out of memory; keeping it", "err", err, "failures", sp.fails+1)
		}
		sp.since = now // tried again after a longer idle spell
		sp.fails = min(sp.fails+1, 16)
		return
	}
	sp.fails = 0
	if !s.Spilled() {
		return // too small to be worth it
	}
	j.log.Debug("moved the scan state out of memory", "paths", s.Len())
	if j.scanSave != nil {
		j.scanSave.release = true // once it is written
	} else {
		j.releaseMemory()
	}
}

// spillLargeStates spills a scan state of largeGeneration paths or more
// at once: a source's first scan's, before the first generation is made
// from it (the index made from it, the store's record of it and the
// announcement need the memory), and any job's after a large generation,
// without waiting for the idle spill. The state is read a few paths at a
// time until the tree changes. A failure keeps it in memory; the idle
// spill tries again.
func (j *job) spillLargeStates() {
	if j.states.Len() < largeGeneration || j.states.Spilled() {
		return
	}
	if err := j.states.Spill(j.a.store.Dir()); err != nil {
		j.log.Debug("cannot move the scan state out of memory; keeping it", "err", err)
		return
	}
	j.log.Debug("moved the scan state out of memory", "paths", j.states.Len(), "after", "a large change")
}
