package syncer

import (
	"fmt"
	"math/rand/v2"
	"runtime"
	"slices"
	"testing"
	"time"

	"pbxsync/internal/index"
	"pbxsync/internal/store"
)

// TestSpareIndex: through random announcements, some applied (their want
// becomes the newest generation), some not (failed, or nothing to do),
// the index handed out as want is the newest generation's changed at the
// announced paths, no announcement copies the index, and after each one
// the spare again equals the newest index without being it; neither
// index's kept digest goes stale.
func TestSpareIndex(t *testing.T) {
	t.Parallel()
	rng := rand.New(rand.NewPCG(8, 9))
	x := idx(dir("d", 0o755, 1))
	for i := range 30 {
		it := file(fmt.Sprintf("d/f%02d", i), fmt.Sprint(i), 0o644, 1)
		x.Set(it)
	}
	j := &job{latest: &store.Generation{Number: 1, Index: x}}
	j.takeSpare(nil)
	j.settleSpare()
	clones := 0
	for step := range 300 {
		latest := j.latest.Index
		ref := latest.Clone()
		var paths []string
		for range 1 + rng.IntN(3) {
			p := fmt.Sprintf("d/f%02d", rng.IntN(35))
			if slices.Contains(paths, p) {
				continue // announced paths are unique
			}
			paths = append(paths, p)
			if rng.IntN(4) == 0 {
				ref.Delete(p)
			} else {
				ref.Set(file(p, fmt.Sprint(rng.IntN(9)), 0o644, int64(step)))
			}
		}
		spare := j.spare.x
		want := j.takeSpare(paths)
		if !want.Same(spare) {
			clones++
		}
		if want.Same(latest) {
			t.Fatalf("step %d: want is the newest index itself", step)
		}
		for _, p := range paths {
			if it, ok := ref.Get(p); ok {
				want.Set(it)
			} else {
				want.Delete(p)
			}
		}
		j.digests.derive(latest, want, paths)
		if !index.SameItems(want, ref) {
			t.Fatalf("step %d: want differs from the newest index changed at %v", step, paths)
		}
		if rng.IntN(2) == 0 {
			j.latest = &store.Generation{Number: j.latest.Number + 1, Index: want}
		}
		j.settleSpare()
		if !index.SameItems(j.spare.x, j.latest.Index) || j.spare.x.Same(j.latest.Index) || j.spare.of != j.latest {
			t.Fatalf("step %d: the spare is not a separate copy of the newest index", step)
		}
		for _, y := range []index.Index{j.latest.Index, j.spare.x} {
			if j.digests.of(y) != index.DigestOf(y) {
				t.Fatalf("step %d: a kept digest is stale", step)
			}
		}
	}
	if clones != 0 {
		t.Errorf("%d announcements copied the index", clones)
	}
}

// TestSpareDroppedWhenIdle: a target lets go of its spare index once no
// announcement used it for spareIdle (not while one uses it, not
// earlier), the memory goes with it (nothing else of the job holds the
// copy, the digest cache included), and the next announcement gets a
// fresh copy of the newest index, separate from it.
func TestSpareDroppedWhenIdle(t *testing.T) {
	heap := func() int64 {
		runtime.GC()
		var m runtime.MemStats
		runtime.ReadMemStats(&m)
		return int64(m.HeapAlloc)
	}
	x := idx(dir("d", 0o755, 1))
	for i := range 50000 {
		it := file(fmt.Sprintf("d/f%05d", i), fmt.Sprint(i), 0o644, 1)
		x.Set(it)
	}
	j := &job{latest: &store.Generation{Number: 1, Index: x}}
	j.digests.of(x)
	h0 := heap()
	j.takeSpare(nil)
	j.settleSpare()
	spare := j.spare.x
	h1 := heap()
	if spare.IsNil() || spare.Same(x) || !index.SameItems(spare, x) || h1-h0 < 4<<20 {
		t.Fatalf("no separate spare made (%d bytes)", h1-h0)
	}
	used := j.spare.used
	if j.dropIdleSpare(used.Add(spareIdle - time.Millisecond)) {
		t.Fatal("the spare was dropped before spareIdle")
	}
	want := j.takeSpare([]string{"d/f00001"})
	if j.dropIdleSpare(used.Add(time.Hour)) || !j.spare.x.Same(want) {
		t.Fatal("the spare was dropped while an announcement used it")
	}
	j.settleSpare()
	spare = index.Index{}
	want = index.Index{}
	if !j.dropIdleSpare(j.spare.used.Add(spareIdle)) || !j.spare.x.IsNil() || j.spare.of != nil {
		t.Fatal("the spare is kept after spareIdle without announcements")
	}
	for i, y := range j.digests.x {
		if !y.IsNil() && !y.Same(x) {
			t.Fatalf("the digest cache holds index %d of %d items beside the newest", i, y.Len())
		}
	}
	h2 := heap()
	if freed := h1 - h2; freed < (h1-h0)/2 {
		t.Fatalf("dropping the spare freed %d bytes of the %d its copy took", freed, h1-h0)
	}
	runtime.KeepAlive(j)

	// the next announcement copies the newest index again
	it := file("d/new", "n", 0o644, 2)
	want = j.takeSpare([]string{it.Path})
	if want.Same(x) || !index.SameItems(want, x) {
		t.Fatal("the spare taken after a drop is not a separate copy of the newest index")
	}
	want.Set(it)
	if x.Has(it.Path) {
		t.Fatal("changing the new spare changed the newest index")
	}
	j.digests.derive(x, want, []string{it.Path})
	j.latest = &store.Generation{Number: 2, Index: want}
	j.settleSpare()
	if !index.SameItems(j.spare.x, want) || j.spare.x.Same(want) || j.digests.of(j.spare.x) != index.DigestOf(want) {
		t.Fatal("the spare is not a copy of the newest index after the announcement")
	}
}
