package syncer

import (
	"runtime"
	"sync"
	"testing"
)

// TestIdleRelease: the heap is handed back after quietSamples quiet
// samples in a row with releaseSlack or more held beyond the live heap,
// once, and not while the agent allocates, nor again before it allocated
// quietAllocBytes.
func TestIdleRelease(t *testing.T) {
	const mib = 1 << 20
	busy := func(allocs uint64) heapSample { return heapSample{allocs: allocs, held: 200 * mib, live: 50 * mib} }
	tests := []struct {
		name    string
		samples []heapSample
		want    []bool
	}{
		{"busy", []heapSample{busy(0), busy(100 * mib), busy(200 * mib), busy(300 * mib)}, []bool{false, false, false, false}},
		{"quiet after busy", []heapSample{busy(0), busy(100 * mib), busy(100*mib + 1000), busy(100*mib + 2000)}, []bool{false, false, false, true}},
		{"one quiet sample is not enough", []heapSample{busy(0), busy(100 * mib), busy(100 * mib), busy(200 * mib), busy(200 * mib)}, []bool{false, false, false, false, false}},
		{"little held beyond the live heap", []heapSample{
			{allocs: 0, held: 53 * mib, live: 50 * mib}, {allocs: 10, held: 53 * mib, live: 50 * mib}, {allocs: 20, held: 53 * mib, live: 50 * mib},
		}, []bool{false, false, false}},
		{"released once, not again while quiet", []heapSample{
			busy(0), busy(0), busy(0),
			{allocs: 0, held: 52 * mib, live: 50 * mib}, {allocs: 0, held: 52 * mib, live: 50 * mib}, {allocs: 0, held: 52 * mib, live: 50 * mib},
		}, []bool{false, false, true, false, false, false}},
		{"quiet after a busy spell that left little held beyond the live heap", []heapSample{
			{allocs: 0, held: 52 * mib, live: 50 * mib}, {allocs: 100 * mib, held: 52 * mib, live: 50 * mib},
			{allocs: 100 * mib, held: 52 * mib, live: 50 * mib}, {allocs: 100 * mib, held: 52 * mib, live: 50 * mib},
			{allocs: 100 * mib, held: 52 * mib, live: 50 * mib}, {allocs: 100 * mib, held: 52 * mib, live: 50 * mib},
		}, []bool{false, false, false, true, false, false}},
		{"quiet again after a second busy spell", []heapSample{busy(0), busy(0), busy(0), busy(100 * mib), busy(100 * mib), busy(100 * mib)}, []bool{false, false, true, false, false, true}},
		{"a few edits after an initial sync: 5 MiB held beyond the live heap", []heapSample{
			{allocs: 0, held: 45 * mib, live: 45 * mib}, {allocs: 3 * mib, held: 50 * mib, live: 45 * mib},
			{allocs: 3 * mib, held: 50 * mib, live: 45 * mib}, {allocs: 3 * mib, held: 50 * mib, live: 45 * mib},
		}, []bool{false, false, false, true}},
		{"fragments held beyond the live heap after a release, nothing allocated since", []heapSample{
			busy(0), busy(0), busy(0), busy(0), busy(0), busy(0), busy(0), busy(512 << 10), busy(512 << 10), busy(512 << 10),
		}, []bool{false, false, true, false, false, false, false, false, false, false}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var r idleRelease
			for i, s := range tt.samples {
				s.allocs += 10 * mib // what the agent allocated before its first sample
				if got := r.note(s); got != tt.want[i] {
					t.Fatalf("sample %d: release %v, want %v", i, got, tt.want[i])
				}
			}
		})
	}
}

// TestReadHeapSample: the runtime knows every metric read (an unknown
// name reads as 0, and the agent would never release), and what is
// allocated shows in bytes allocated and held.
func TestReadHeapSample(t *testing.T) {
	runtime.GC()
	before := readHeapSample()
	if before.allocs == 0 || before.live == 0 || before.held < before.live {
		t.Fatalf("heap sample %+v: want bytes allocated, a live heap and at least as much held", before)
	}
	var keep [][]byte
	for range 64 {
		keep = append(keep, make([]byte, 1<<20))
	}
	after := readHeapSample()
	if after.allocs-before.allocs < 64<<20 || after.held < 64<<20 {
		t.Fatalf("after allocating 64 MiB: %+v (before %+v)", after, before)
	}
	runtime.KeepAlive(keep)
}

// TestFreeHeapEmptiesPools: the release after a busy spell lets go of
// what sync.Pools hold (encoding/json keeps the buffer of the largest
// message it encoded in one, 4 MiB after an initial sync of 100,000
// files), which one collection only moves to the pools' victim caches.
func TestFreeHeapEmptiesPools(t *testing.T) {
	var p sync.Pool
	for range 100 { // beyond a P's private slot: in its shared list, which any P reads
		p.Put(new([64]byte))
	}
	freeHeap()
	if x := p.Get(); x != nil {
		t.Fatal("a pooled buffer survived the release")
	}
}
