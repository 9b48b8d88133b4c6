package store

import (
	"math/rand/v2"
	"slices"
	"testing"

	"pbxsync/internal/index"
)

func TestRefDeltasSorted(t *testing.T) {
	h := func(b byte) index.Hash { return index.Hash{b} }
	tests := []struct {
		name string
		add  []refDelta
		want []refDelta
	}{
		{"none", nil, []refDelta{}},
		{"in hash order", []refDelta{{h(3), 1}, {h(1), -1}, {h(2), 1}}, []refDelta{{h(1), -1}, {h(2), 1}, {h(3), 1}}},
		{"summed by hash", []refDelta{{h(2), 1}, {h(1), 1}, {h(2), 1}, {h(2), -1}, {h(1), 1}}, []refDelta{{h(1), 2}, {h(2), 1}}},
		{"a sum of zero left out", []refDelta{{h(1), 1}, {h(2), 1}, {h(1), -1}, {h(3), -1}}, []refDelta{{h(2), 1}, {h(3), -1}}},
		{"all zero", []refDelta{{h(1), 1}, {h(1), -1}}, []refDelta{}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := newRefDeltas(len(tc.add))
			for _, x := range tc.add {
				r.add(x.h, x.d)
			}
			if got := r.sorted(); !slices.Equal(got, tc.want) {
				t.Errorf("sorted = %v, want %v", got, tc.want)
			}
			if got := r.sorted(); !slices.Equal(got, tc.want) {
				t.Errorf("sorted again = %v, want %v", got, tc.want)
			}
		})
	}
}

// TestRefDeltasMatchAMap: over random changes, sorted gives what summing
// them in a map (as the store did) and listing the non-zero sums in hash
// order gives.
func TestRefDeltasMatchAMap(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for range 200 {
		r := &refDeltas{}
		m := map[index.Hash]int64{}
		for range rng.IntN(300) {
			h := index.Hash{byte(rng.IntN(40)), byte(rng.IntN(3))}
			d := int64(rng.IntN(3) - 1)
			r.add(h, d)
			m[h] += d
		}
		var want []refDelta
		for _, h := range sortedHashes(m) {
			if m[h] != 0 {
				want = append(want, refDelta{h, m[h]})
			}
		}
		if got := r.sorted(); len(got) != len(want) || (len(want) > 0 && !slices.Equal(got, want)) {
			t.Fatalf("sorted = %v, want %v", got, want)
		}
	}
}
