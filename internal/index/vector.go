package index

import "sort"

// Counter is one entry of a version vector: how many changes a node made.
type Counter struct {
	Node  string // node ID
	Value uint64
}

// Vector is a version vector, sorted by node. The zero value is empty.
type Vector []Counter

// Clone returns a copy of v.
func (v Vector) Clone() Vector {
	if v == nil {
		return nil
	}
	return append(Vector(nil), v...)
}

// Get returns the counter of node, 0 when absent.
func (v Vector) Get(node string) uint64 {
	for _, c := range v {
		if c.Node == node {
			return c.Value
		}
	}
	return 0
}

// Update returns a copy of v with node's counter set to max(counter, value).
func (v Vector) Update(node string, value uint64) Vector {
	out := v.Clone()
	for i := range out {
		if out[i].Node == node {
			if value > out[i].Value {
				out[i].Value = value
			}
			return out
		}
	}
	out = append(out, Counter{Node: node, Value: value})
	sort.Slice(out, func(i, j int) bool { return out[i].Node < out[j].Node })
	return out
}

// Bump returns a copy of v with node's counter increased by one.
func (v Vector) Bump(node string) Vector { return v.Update(node, v.Get(node)+1) }

// Ordering is the result of comparing two vectors.
type Ordering int

// The outcomes of Compare.
const (
	Equal      Ordering = iota // same history
	Before                     // a happened before b
	After                      // a happened after b
	Concurrent                 // neither contains the other
)

// Compare orders a against b.
func Compare(a, b Vector) Ordering {
	aGreater, bGreater := false, false
	nodes := map[string]struct{}{}
	for _, c := range a {
		nodes[c.Node] = struct{}{}
	}
	for _, c := range b {
		nodes[c.Node] = struct{}{}
	}
	for n := range nodes {
		av, bv := a.Get(n), b.Get(n)
		if av > bv {
			aGreater = true
		} else if bv > av {
			bGreater = true
		}
	}
	switch {
	case aGreater && bGreater:
		return Concurrent
	case aGreater:
		return After
	case bGreater:
		return Before
	}
	return Equal
}
