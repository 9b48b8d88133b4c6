package syncer

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"

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
		x[it.Path] = it
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
				delete(ref, p)
			} else {
				ref[p] = file(p, fmt.Sprint(rng.IntN(9)), 0o644, int64(step))
			}
		}
		spare := j.spare.x
		want := j.takeSpare(paths)
		if !sameMap(want, spare) {
			clones++
		}
		if sameMap(want, latest) {
			t.Fatalf("step %d: want is the newest index itself", step)
		}
		for _, p := range paths {
			if it, ok := ref[p]; ok {
				want[p] = it
			} else {
				delete(want, p)
			}
		}
		j.digests.derive(latest, want, paths)
		if !sameItems(want, ref) {
			t.Fatalf("step %d: want differs from the newest index changed at %v", step, paths)
		}
		if rng.IntN(2) == 0 {
			j.latest = &store.Generation{Number: j.latest.Number + 1, Index: want}
		}
		j.settleSpare()
		if !sameItems(j.spare.x, j.latest.Index) || sameMap(j.spare.x, j.latest.Index) || j.spare.of != j.latest {
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
