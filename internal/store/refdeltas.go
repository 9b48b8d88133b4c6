package store

import (
	"slices"

	"pbxsync/internal/index"
)

// refDelta is a change of one blob's reference count.
type refDelta struct {
	h index.Hash
	d int64
}

// refDeltas collects reference count changes as a list, merged by hash
// when they are applied (sorted). Recording a 100,000-file generation
// held a map of them, its keys sorted and the non-zero ones listed, ~13
// MB at once on both agents at the peak of an initial sync; the list is
// 4 MB.
type refDeltas struct {
	list   []refDelta
	merged bool // list is sorted, one change per hash, none zero
}

// newRefDeltas returns a refDeltas with room for n changes.
func newRefDeltas(n int) *refDeltas {
	return &refDeltas{list: make([]refDelta, 0, n)}
}

// add notes a change of d to the reference count of h.
func (r *refDeltas) add(h index.Hash, d int64) {
	r.list = append(r.list, refDelta{h, d})
	r.merged = false
}

// sorted returns the changes in hash order (bbolt's key order), the
// changes of each hash summed into one and those that sum to zero left
// out.
func (r *refDeltas) sorted() []refDelta {
	if r.merged {
		return r.list
	}
	slices.SortFunc(r.list, func(a, b refDelta) int { return compareHashes(a.h, b.h) })
	out := r.list[:0]
	for _, x := range r.list {
		if n := len(out); n > 0 && out[n-1].h == x.h {
			out[n-1].d += x.d
			continue
		}
		out = append(out, x)
	}
	r.list = slices.DeleteFunc(out, func(x refDelta) bool { return x.d == 0 })
	r.merged = true
	return r.list
}
