package core

import (
	"fmt"
	"strings"
	"testing"

	"pbxsync/internal/index"
)

func item(path string, h byte, size int64) index.Item {
	return index.Item{Path: path, Kind: index.KindFile, Hash: index.Hash{h}, Size: size}
}

// TestToFetch: each content once, none the tree holds at its path (those
// apart, for the store to take from the tree); need is missing filtered
// in place, not a copy.
func TestToFetch(t *testing.T) {
	missing := []index.Item{item("a", 1, 10), item("b", 1, 10), item("c", 2, 10), item("d", 3, 10), item("e", 3, 10), item("f", 4, 10)}
	tree := map[string]index.Hash{"c": {2}, "d": {9}, "f": {4}}
	need, fromTree := ToFetch(missing, func(p string) (index.Hash, bool) { h, ok := tree[p]; return h, ok })
	paths := func(items []index.Item) string {
		var ps []string
		for _, it := range items {
			ps = append(ps, it.Path)
		}
		return strings.Join(ps, ",")
	}
	// a and b share a content: a; c and f are in the tree; d holds other
	// content there: fetched, and e shares it
	if s := paths(need); s != "a,d" {
		t.Errorf("ToFetch need = %s, want a,d", s)
	}
	if s := paths(fromTree); s != "c,f" {
		t.Errorf("ToFetch fromTree = %s, want c,f", s)
	}
	if len(need) > 0 && &need[0] != &missing[0] {
		t.Error("ToFetch copied missing")
	}
}

// TestUnits: large files and files with a delta base alone, small new ones
// in batches bounded by count and bytes, in need's order; the units are
// parts of need (reordered in place), not copies.
func TestUnits(t *testing.T) {
	b := Batching{ItemMax: 100, Bytes: 250, MaxItems: 3}
	need := []index.Item{item("big", 1, 101), item("here", 2, 5), item("n1", 3, 100), item("n2", 4, 100),
		item("n3", 5, 60), item("n4", 6, 1), item("n5", 7, 1), item("n6", 8, 1), item("n7", 9, 1)}
	units := b.Units(need, func(it index.Item) bool { return it.Path == "here" })
	var out []string
	for _, u := range units {
		var ps []string
		for _, it := range u {
			ps = append(ps, it.Path)
		}
		out = append(out, "["+strings.Join(ps, " ")+"]")
	}
	want := "[n1 n2] [n3 n4 n5] [n6 n7] [here] [big]" // the ones alone in any order
	if got := strings.Join(out, " "); got != want {
		t.Errorf("Units = %s\nwant %s", got, want)
	}
	at := 0
	for _, u := range units {
		if &u[0] != &need[at] {
			t.Errorf("the unit of %s is a copy, not a part of need", u[0].Path)
		}
		if cap(u) != len(u) {
			t.Errorf("the unit of %s can grow into its neighbour (cap %d, len %d)", u[0].Path, cap(u), len(u))
		}
		at += len(u)
	}
	if got := fmt.Sprint(len(b.Units(nil, func(index.Item) bool { return false }))); got != "0" {
		t.Errorf("no need: %s units", got)
	}
}
