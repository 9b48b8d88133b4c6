package syncer

import (
	"fmt"
	"testing"

	"pbxsync/hostmon"
	"pbxsync/internal/index"
	"pbxsync/internal/wire"
)

// TestFetchUnits: small new files go in batches (at most wire.MaxGetMore+1
// files or batchBytes each, in need's order), a large file or one whose
// path holds a file here (a delta base) on its own; every item once. The
// batches are parts of need, not copies of its items (an initial sync's
// 100k items were held twice while they were fetched).
func TestFetchUnits(t *testing.T) {
	j := &job{states: map[string]hostmon.FileState{
		"here.conf": {Item: index.Item{Path: "here.conf", Kind: index.KindFile}},
	}}
	var need []index.Item
	var order []string // the batched paths, in need's order
	for i := range 300 {
		it := index.Item{Path: fmt.Sprintf("f%03d.conf", i), Kind: index.KindFile, Size: 1000}
		if i%50 == 7 {
			it.Size = 200 << 10 // 30 of these fill batchBytes
		}
		need = append(need, it)
		order = append(order, it.Path)
		if i == 100 {
			need = append(need, index.Item{Path: "big.wav", Kind: index.KindFile, Size: batchItemMax + 1})
		}
		if i == 200 {
			need = append(need, index.Item{Path: "here.conf", Kind: index.KindFile, Size: 10})
		}
	}
	n := len(need)
	units := j.fetchUnits(need)
	seen := map[string]int{}
	var batched []string
	var alone []string
	for _, u := range units {
		if len(u) == 0 {
			t.Fatal("an empty unit")
		}
		var size int64
		for _, it := range u {
			seen[it.Path]++
			size += it.Size
		}
		if len(u) == 1 && (u[0].Path == "big.wav" || u[0].Path == "here.conf") {
			alone = append(alone, u[0].Path)
			continue
		}
		if len(u) > wire.MaxGetMore+1 || (len(u) > 1 && size > batchBytes) {
			t.Fatalf("a batch of %d files, %d bytes", len(u), size)
		}
		for _, it := range u {
			if it.Path == "big.wav" || it.Path == "here.conf" {
				t.Fatalf("%s fetched in a batch", it.Path)
			}
			batched = append(batched, it.Path)
		}
		if &u[0] != &need[len(batched)-len(u)] {
			t.Fatalf("the batch of %s is a copy, not a part of need", u[0].Path)
		}
		if cap(u) != len(u) {
			t.Fatalf("a batch with room to grow into its neighbour (cap %d, len %d)", cap(u), len(u))
		}
	}
	if len(seen) != n {
		t.Fatalf("%d paths in the units, %d needed", len(seen), n)
	}
	for p, c := range seen {
		if c != 1 {
			t.Fatalf("%s in %d units", p, c)
		}
	}
	if fmt.Sprint(batched) != fmt.Sprint(order) {
		t.Fatalf("batched out of order:\n%v\nwant\n%v", batched, order)
	}
	if len(alone) != 2 {
		t.Fatalf("alone: %v", alone)
	}
}
