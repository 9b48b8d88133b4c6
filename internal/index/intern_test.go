package index

import (
	"fmt"
	"testing"
)

// sameBacking reports whether a and b are the very same slice.
func sameBacking(a, b Vector) bool {
	return len(a) > 0 && len(b) > 0 && &a[0] == &b[0] && len(a) == len(b)
}

func TestVectorsIntern(t *testing.T) {
	var vs Vectors
	a := Vector{}.Bump("node-a").Bump("node-b")
	b := Vector{}.Bump("node-a").Bump("node-b") // equal, its own slice
	c := Vector{}.Bump("node-a")
	if sameBacking(a, b) {
		t.Fatal("the test's vectors share a slice already")
	}
	ia, ib, ic := vs.Intern(a), vs.Intern(b), vs.Intern(c)
	if !sameBacking(ia, ib) || !sameBacking(ia, a) {
		t.Fatalf("equal vectors are not shared: %v %v", ia, ib)
	}
	if sameBacking(ia, ic) || Compare(ic, c) != Equal {
		t.Fatalf("%v interned as %v", c, ic)
	}
	if got := vs.Intern(nil); got != nil {
		t.Fatalf("nil interned as %v", got)
	}
	if got := vs.Intern(Vector{}); got == nil || len(got) != 0 {
		t.Fatalf("an empty vector interned as %#v", got)
	}
	// a node name that ends in digits is not confused with a counter
	x, y := vs.Intern(Vector{{Node: "n1", Value: 2}}), vs.Intern(Vector{{Node: "n", Value: 12}})
	if sameBacking(x, y) {
		t.Fatal("different vectors shared")
	}
	var nilVs *Vectors
	if _, ok := nilVs.Get([]byte{1}); ok {
		t.Fatal("a nil Vectors holds something")
	}
	if got := nilVs.Put([]byte{1}, a); !sameBacking(got, a) {
		t.Fatal("Put on a nil Vectors does not return its vector")
	}
}

// TestVectorsBounded: a table of many distinct vectors starts over
// instead of growing without bound, and what it handed out stays right.
func TestVectorsBounded(t *testing.T) {
	var vs Vectors
	for i := range 3 * maxInterned {
		v := vs.Intern(Vector{{Node: fmt.Sprint("node-", i), Value: 1}})
		if v[0].Node != fmt.Sprint("node-", i) {
			t.Fatalf("vector %d interned as %v", i, v)
		}
		if len(vs.m) > maxInterned {
			t.Fatalf("%d vectors held, more than %d", len(vs.m), maxInterned)
		}
	}
}
