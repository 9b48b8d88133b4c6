package main

import (
	"context"
	"log/slog"
	"math"
	"os"
	"runtime/debug"
	"runtime/metrics"
	"slices"
	"sync"
	"time"

	"pbxsync/internal/config"
)

// memoryLimit keeps the Go runtime's soft memory limit at [node]
// memory_limit (0: none). Near the limit the collector runs more often
// instead of letting the heap grow to twice its live size, so the agent's
// resident memory follows its live heap; it is never an error to exceed
// it. A live heap that grows past three quarters of the limit (a job of
// several hundred thousand files, an initial sync) raises the limit to
// 4/3 of it, so that the collector always has a quarter of the live heap
// to fill between two runs instead of running without pause, and the
// limit comes back down once the live heap does. The log says so once per
// spell (see spellQuiet). GOMEMLIMIT in the environment wins over all of
// this.
type memoryLimit struct {
	log *slog.Logger
	// set is debug.SetMemoryLimit; live reads the live heap as of the
	// last collection (tests replace both)
	set  func(int64) int64
	live func() uint64
	gc   func(int) int // debug.SetGCPercent

	mu     sync.Mutex
	base   int64 // memory_limit; 0: none
	env    bool  // GOMEMLIMIT is set: leave the runtime alone
	limit  int64 // the limit set now (0: none set yet)
	raised bool  // limit is above base
	// grown are the limits Grow calls wanted, one slot per poll since
	// (holdPolls), next the slot of the next poll: a raise for heap that
	// was coming outlasts the first poll after it, whose live heap a
	// collection may not have measured since
	grown [holdPolls]int64
	next  int
	// grow is the heap that Grow calls under way said is coming, growing
	// their number, gcPercent the GOGC the first of them turned off
	grow      int64
	growing   int
	gcPercent int
	// spell: a raise by the live heap was logged at Info, and the limit
	// has not been back at base for spellQuiet polls since (quiet)
	spell bool
	quiet int
}

// holdPolls is how many polls a limit raised by Grow is held (2 s).
const holdPolls = 4

// spellQuiet is how many polls the limit stays at memory_limit before the
// log says it is back (5 s): the live heap of an initial sync of 300,000
// files swings around three quarters of memory_limit every half second,
// and the limit follows it up and down; said at each turn, that was 9-12
// Info lines per agent per sync, two now. (Held up instead for 2 or 5 s,
// the limit let the peak RSS of that sync grow by 11-25 MiB for no CPU
// measured.)
const spellQuiet = 10

// memoryPoll is how often the live heap is looked at.
const memoryPoll = 500 * time.Millisecond

func newMemoryLimit(log *slog.Logger) *memoryLimit {
	return &memoryLimit{log: log, set: debug.SetMemoryLimit, live: liveHeap, gc: debug.SetGCPercent}
}

// configure takes memory_limit from n (at start and at each reload) and
// sets the limit at once.
func (m *memoryLimit) configure(n config.Node) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if env := os.Getenv("GOMEMLIMIT"); env != "" {
		if !m.env {
			m.log.Debug("memory limit from GOMEMLIMIT; [node] memory_limit ignored", "GOMEMLIMIT", env)
		}
		m.env = true
		return
	}
	m.env = false
	m.base = max(n.MemoryLimit, 0)
	m.grown, m.next = [holdPolls]int64{}, 0
	m.apply(m.live())
}

// adjust sets the limit for a live heap of live bytes: one poll.
func (m *memoryLimit) adjust(live uint64) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.env {
		return
	}
	m.next++
	m.grown[m.next%holdPolls] = 0
	m.apply(live)
}

// apply sets the limit for a live heap of live bytes, the heap Grow calls
// say is coming and the limits they raised, logging at Info when the live
// heap first raises it and when it has been back at memory_limit for
// spellQuiet polls. The caller holds m.mu.
func (m *memoryLimit) apply(live uint64) {
	own := limitFor(m.base, live)
	want := max(limitFor(m.base, live+uint64(m.grow)), slices.Max(m.grown[:]))
	raised := m.base > 0 && want > m.base
	if raised {
		m.quiet = 0
	} else if m.quiet++; m.spell && m.quiet >= spellQuiet {
		m.spell = false
		m.log.Info("memory limit back at memory_limit", "live_bytes", live, "memory_limit", m.base)
	}
	if want == m.limit {
		return
	}
	first := m.limit == 0
	m.set(want)
	m.limit = want
	switch {
	case raised && !m.raised && own > m.base && !m.spell:
		m.spell = true
		m.log.Info("the live heap needs more than memory_limit; raising the memory limit while it does", "live_bytes", live, "memory_limit", m.base, "limit", want)
	case raised && !m.raised:
		m.log.Debug("memory limit raised", "live_bytes", live, "coming_bytes", m.grow, "memory_limit", m.base, "limit", want)
	case !raised && m.raised:
		m.log.Debug("memory limit back at memory_limit", "live_bytes", live, "memory_limit", m.base)
	case first:
		m.log.Debug("memory limit set", "bytes", m.base)
	}
	m.raised = raised
}

// limitFor is the memory limit for a live heap of live bytes under a
// memory_limit of base: base while the live heap is at most three
// quarters of it, else 4/3 of the live heap; no limit (MaxInt64) for a
// base of 0.
func limitFor(base int64, live uint64) int64 {
	if base <= 0 {
		return math.MaxInt64
	}
	if live > math.MaxInt64/4 {
		return math.MaxInt64
	}
	return max(base, int64(live)*4/3)
}

// Grow implements syncer.MemoryBudget: until done, the limit covers the
// live heap and bytes more, and the collector runs only at the limit, not
// each time the heap doubles. A job that reads its parked index back
// (syncer/park.go; ~58 MB at 300,000 files) ran a collection at each
// doubling, each marking the map it was filling, and then one after
// another at memory_limit until the next poll raised it: 0.75-1.25 s for
// that read on the benchmark machine, 0.56-0.95 s with Grow (the rest is
// mostly faults of fresh pages). The raise is held holdPolls polls, the
// live heap read at the next poll being the one before the read-back.
// Nothing changes with GOMEMLIMIT set or memory_limit off.
func (m *memoryLimit) Grow(bytes int64) (done func()) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.env || m.base <= 0 || bytes <= 0 {
		return func() {}
	}
	if m.growing == 0 {
		m.gcPercent = m.gc(-1)
	}
	m.growing++
	m.grow += bytes
	live := m.live()
	m.grown[m.next%holdPolls] = max(m.grown[m.next%holdPolls], limitFor(m.base, live+uint64(m.grow)))
	m.apply(live)
	var once sync.Once
	return func() {
		once.Do(func() {
			m.mu.Lock()
			defer m.mu.Unlock()
			m.grow -= bytes
			if m.growing--; m.growing == 0 {
				m.gc(m.gcPercent)
			}
		})
	}
}

// run adjusts the limit to the live heap every memoryPoll until ctx ends.
func (m *memoryLimit) run(ctx context.Context) {
	t := time.NewTicker(memoryPoll)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			m.adjust(m.live())
		}
	}
}

// liveHeap returns the bytes of heap the last collection found live.
func liveHeap() uint64 {
	s := []metrics.Sample{{Name: "/gc/heap/live:bytes"}}
	metrics.Read(s)
	if s[0].Value.Kind() != metrics.KindUint64 {
		return 0
	}
	return s[0].Value.Uint64()
}
