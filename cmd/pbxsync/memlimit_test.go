package main

import (
	"bytes"
	"log/slog"
	"math"
	"runtime/debug"
	"slices"
	"strings"
	"testing"

	"pbxsync/internal/config"
)

func TestLimitFor(t *testing.T) {
	const mib = 1 << 20
	for _, tc := range []struct {
		base int64
		live uint64
		want int64
	}{
		{64 * mib, 0, 64 * mib},
		{64 * mib, 20 * mib, 64 * mib},
		{64 * mib, 48 * mib, 64 * mib},            // three quarters: still room
		{64 * mib, 60 * mib, 80 * mib},            // past it: 4/3 of the live heap
		{64 * mib, 300 * mib, 400 * mib},          // a job of several hundred thousand files
		{0, 300 * mib, math.MaxInt64},             // memory_limit = off
		{64 * mib, math.MaxUint64, math.MaxInt64}, // no overflow
		{128 * mib, 100 * mib, 400 * mib / 3},     // 133.3 MiB
	} {
		if got := limitFor(tc.base, tc.live); got != tc.want {
			t.Errorf("limitFor(%d, %d) = %d, want %d", tc.base, tc.live, got, tc.want)
		}
	}
}

// TestMemoryLimitFollowsTheLiveHeap: the limit is memory_limit until the
// live heap passes three quarters of it, then 4/3 of the live heap, and
// memory_limit again once the live heap shrinks; the log says so at Info
// once per spell: raised once, back once the limit stayed at memory_limit
// for spellQuiet polls, however often a live heap swinging around three
// quarters of it moved the limit in between. GOMEMLIMIT leaves the
// runtime alone.
func TestMemoryLimitFollowsTheLiveHeap(t *testing.T) {
	t.Setenv("GOMEMLIMIT", "")
	const mib = 1 << 20
	var logs bytes.Buffer
	var sets []int64
	live := uint64(10 * mib)
	m := &memoryLimit{log: slog.New(slog.NewTextHandler(&logs, nil)),
		set:  func(n int64) int64 { sets = append(sets, n); return 0 },
		live: func() uint64 { return live }}
	m.configure(config.Node{MemoryLimit: 64 * mib})
	for _, l := range []uint64{20 * mib, 60 * mib, 90 * mib, 90 * mib, 30 * mib, 10 * mib} {
		m.adjust(l)
	}
	want := []int64{64 * mib, 80 * mib, 120 * mib, 64 * mib}
	if !slices.Equal(sets, want) {
		t.Fatalf("limits set %v, want %v", sets, want)
	}
	// a swing around three quarters before the spell is over: the limit
	// follows, the log says nothing
	for i := range 2 * spellQuiet {
		m.adjust([]uint64{55 * mib, 47 * mib}[i%2])
	}
	if n := len(sets) - len(want); n != 2*spellQuiet {
		t.Errorf("a swinging live heap moved the limit %d times in %d polls, want each time", n, 2*spellQuiet)
	}
	if strings.Contains(logs.String(), "back at memory_limit") {
		t.Errorf("back at memory_limit logged within %d polls at it:\n%s", spellQuiet, logs.String())
	}
	for range spellQuiet {
		m.adjust(10 * mib)
	}
	if n := strings.Count(logs.String(), "raising the memory limit"); n != 1 {
		t.Errorf("raised %d times in the log, want once:\n%s", n, logs.String())
	}
	if n := strings.Count(logs.String(), "memory limit back at memory_limit"); n != 1 {
		t.Errorf("back at memory_limit %d times in the log, want once after %d polls at it:\n%s", n, spellQuiet, logs.String())
	}

	// memory_limit = off: no limit, whatever the heap
	sets = nil
	m.configure(config.Node{MemoryLimit: 0})
	m.adjust(500 * mib)
	if len(sets) != 1 || sets[0] != math.MaxInt64 {
		t.Errorf("memory_limit off: limits set %v, want one MaxInt64", sets)
	}

	// GOMEMLIMIT wins: nothing is set from then on
	t.Setenv("GOMEMLIMIT", "100MiB")
	sets = nil
	m.configure(config.Node{MemoryLimit: 48 * mib})
	m.adjust(200 * mib)
	if len(sets) != 0 {
		t.Errorf("with GOMEMLIMIT set: limits set %v, want none", sets)
	}
}

// TestMemoryLimitSetsTheRuntime: the real limit is memory_limit.
func TestMemoryLimitSetsTheRuntime(t *testing.T) {
	t.Setenv("GOMEMLIMIT", "")
	before := debug.SetMemoryLimit(-1)
	t.Cleanup(func() { debug.SetMemoryLimit(before) })
	m := newMemoryLimit(slog.New(slog.DiscardHandler))
	m.configure(config.Node{MemoryLimit: 1 << 40}) // far above this test's live heap
	if got := debug.SetMemoryLimit(-1); got != 1<<40 {
		t.Errorf("limit after memory_limit = 1TiB: %d", got)
	}
	m.configure(config.Node{MemoryLimit: 0})
	if got := debug.SetMemoryLimit(-1); got != math.MaxInt64 {
		t.Errorf("limit after memory_limit = off: %d, want none (MaxInt64)", got)
	}
}

// TestMemoryLimitGrow: while heap is said to be coming (a parked index
// read back), the limit covers it on top of the live heap and GOGC is
// off; the last of overlapping calls puts GOGC back as it was, and the
// limit stays raised for holdPolls polls. With GOMEMLIMIT set or
// memory_limit off nothing changes.
func TestMemoryLimitGrow(t *testing.T) {
	t.Setenv("GOMEMLIMIT", "")
	const mib = 1 << 20
	var sets []int64
	gogc := 100
	m := &memoryLimit{log: slog.New(slog.DiscardHandler),
		set:  func(n int64) int64 { sets = append(sets, n); return 0 },
		live: func() uint64 { return 10 * mib },
		gc:   func(p int) int { old := gogc; gogc = p; return old }}
	m.configure(config.Node{MemoryLimit: 64 * mib})
	done1 := m.Grow(50 * mib)
	if gogc != -1 {
		t.Fatalf("GOGC %d while heap is coming, want off (-1)", gogc)
	}
	if got := sets[len(sets)-1]; got != 80*mib { // 4/3 of 10 + 50 MiB
		t.Fatalf("limit %d while 50 MiB are coming on 10 live, want 80 MiB", got)
	}
	done2 := m.Grow(20 * mib)
	if got := sets[len(sets)-1]; got != 320*mib/3 {
		t.Fatalf("limit %d while 70 MiB are coming, want 106.7 MiB", got)
	}
	done1()
	done1() // twice is once
	if gogc != -1 {
		t.Fatalf("GOGC %d while a second read is under way, want off", gogc)
	}
	done2()
	if gogc != 100 {
		t.Fatalf("GOGC %d after both, want 100 again", gogc)
	}
	n := len(sets)
	m.adjust(10 * mib) // no collection since: the live heap read is the old one
	if len(sets) != n {
		t.Errorf("limit set to %d at the first poll after, want the raised one held", sets[len(sets)-1])
	}
	for range holdPolls - 1 {
		m.adjust(10 * mib)
	}
	if got := sets[len(sets)-1]; got != 64*mib {
		t.Errorf("limit %d %d polls after, want memory_limit again", got, holdPolls)
	}

	for _, tc := range []struct {
		env  string
		base int64
	}{{"100MiB", 64 * mib}, {"", 0}} {
		t.Setenv("GOMEMLIMIT", tc.env)
		m.configure(config.Node{MemoryLimit: tc.base})
		sets = nil
		m.Grow(500 * mib)()
		if gogc != 100 || len(sets) != 0 {
			t.Errorf("GOMEMLIMIT %q, memory_limit %d: GOGC %d and limits set %v, want 100 and none", tc.env, tc.base, gogc, sets)
		}
	}
}
