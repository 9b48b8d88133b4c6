package syncer

import (
	"testing"

	"pbxsync/hostmon"
)

// TestTreeHolds: against an index it does not track, treeHolds compares
// the whole scan state; from then on only the paths touched since, and a
// touched path that is back to the index's item is forgotten.
func TestTreeHolds(t *testing.T) {
	t.Parallel()
	gen := idx(dir("d", 0o755, 1), file("d/a", "a", 0o644, 1), file("d/b", "b", 0o644, 1))
	j := &job{states: &hostmon.States{}}
	for it := range gen.Items() {
		j.states.Set(hostmon.FileState{Item: it})
	}
	if !j.treeHolds(gen) {
		t.Fatal("the tree holds the generation it was made from")
	}
	if !j.drift.knows(gen) || len(j.drift.paths) != 0 {
		t.Fatal("a full comparison that found the tree equal did not start tracking")
	}
	// an edit the scan records
	j.states.Set(hostmon.FileState{Item: file("d/a", "edited", 0o644, 2)})
	j.drift.touch([]string{"d/a"})
	if j.treeHolds(gen) {
		t.Fatal("an edited file not seen")
	}
	// back to the generation's content: forgotten after the check
	genA, _ := gen.Get("d/a")
	j.states.Set(hostmon.FileState{Item: genA})
	if !j.treeHolds(gen) || len(j.drift.paths) != 0 {
		t.Fatalf("a path back to the generation's item is still tracked: %v", j.drift.paths)
	}
	// a new file and a removed one
	j.states.Set(hostmon.FileState{Item: file("d/c", "c", 0o644, 1)})
	j.drift.touch([]string{"d/c"})
	if j.treeHolds(gen) {
		t.Fatal("a new file not seen")
	}
	j.states.Delete("d/c")
	j.states.Delete("d/b")
	j.drift.touch([]string{"d/b"})
	if j.treeHolds(gen) {
		t.Fatal("a removed file not seen")
	}
	// another index is compared in full
	other := gen.Clone()
	other.Delete("d/b")
	if !j.treeHolds(other) || !j.drift.knows(other) || j.drift.knows(gen) {
		t.Fatal("a full comparison against another index failed or did not switch the base")
	}
	// directory mtimes alone do not make the tree differ (as Equal)
	st, _ := j.states.Get("d")
	st.MTime = 99
	j.states.Set(st)
	j.drift.touch([]string{"d"})
	if !j.treeHolds(other) {
		t.Fatal("a directory mtime made the tree differ")
	}
	if got := Equal(j.states.Index(), other); !got {
		t.Fatal("Equal disagrees")
	}
}
