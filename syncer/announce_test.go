package syncer

import (
	"fmt"
	"maps"
	"math/rand/v2"
	"testing"
)

// TestOfferChange: updating the served content by each generation's
// changes serves exactly what offering the two whole generations serves,
// through a random sequence of edits, removals, new files, shared content
// and content that comes back.
func TestOfferChange(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	cur := idx(dir("d", 0o755, 1))
	for i := range 30 {
		it := file(fmt.Sprintf("d/f%02d", i), fmt.Sprint(i%7), 0o644, 1)
		cur[it.Path] = it
	}
	j := &job{}
	j.offer(cur, nil)
	for step := range 300 {
		next := cur.Clone()
		var diff []string
		for range 1 + rng.IntN(3) {
			p := fmt.Sprintf("d/f%02d", rng.IntN(35))
			if rng.IntN(4) == 0 {
				delete(next, p)
			} else {
				next[p] = file(p, fmt.Sprint(rng.IntN(9)), 0o644, int64(step))
			}
			diff = append(diff, p)
		}
		j.offerChange(next, IndexLookup(cur), diff)
		ref := &job{}
		ref.offer(next, cur)
		if !maps.Equal(j.serving, ref.serving) {
			t.Fatalf("step %d: serving %d hashes, offering both generations serves %d", step, len(j.serving), len(ref.serving))
		}
		cur = next
	}

}
