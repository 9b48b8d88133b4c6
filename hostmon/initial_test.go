package hostmon

import (
	"context"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"pbxsync/internal/index"
)

// TestStatesBuilder: states added in any order, a path added twice, make
// the States of the map of the states added last: sorted, every state
// found by Get and All.
func TestStatesBuilder(t *testing.T) {
	v := index.Vector{{Node: "a", Value: 1}}
	b := newStatesBuilder(0)
	want := map[string]FileState{}
	// "a-b" sorts before "a/b" though a walk meets "a/b" first
	for i, p := range []string{"b", "a", "a/b", "a-b", "a/b/c", "a", "z", "a/b"} {
		st := testState(p, i+1, v)
		b.add(st)
		want[p] = st
	}
	s := b.states()
	checkStates(t, "built", s, want)
	if got := slices.Collect(maps.Keys(maps.Collect(s.All()))); len(got) != 6 {
		t.Fatalf("built %d paths, want 6", len(got))
	}
	var order []string
	for p := range s.All() {
		order = append(order, p)
	}
	if !slices.IsSorted(order) {
		t.Fatalf("All yields %v, not sorted", order)
	}
}

// TestInitialStatesEqualsAScanMap: a first scan with WithInitialStates
// finds the same states as one without, returned as a States (not a map),
// and the same Paths; a scan of some paths, or against a prev that holds
// something, ignores the option.
func TestInitialStatesEqualsAScanMap(t *testing.T) {
	root := t.TempDir()
	for i, p := range []string{"a/b/c.conf", "a/b/d.conf", "a-b/x.conf", "a/e.conf", "x.conf", "deep/er/still/f.wav"} {
		writeFile(t, root, p, p+string(rune('0'+i)), 0o644)
	}
	if err := os.Symlink("x.conf", filepath.Join(root, "link.conf")); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	plain, err := ScanDelta(ctx, root, nil, []string{""}, &States{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	d, err := ScanDelta(ctx, root, nil, []string{""}, &States{}, nil, WithInitialStates())
	if err != nil {
		t.Fatal(err)
	}
	if d.States != nil || d.Initial == nil || !d.Full {
		t.Fatalf("a first scan with WithInitialStates: States %v, Initial %v, Full %v", d.States, d.Initial, d.Full)
	}
	got := maps.Collect(d.Initial.All())
	if len(got) != len(plain.States) || len(got) == 0 {
		t.Fatalf("Initial holds %d states, the plain scan %d", len(got), len(plain.States))
	}
	checkSameStates(t, got, plain.States)
	if !slices.Equal(d.Paths(), plain.Paths()) {
		t.Fatalf("Paths %v, want %v", d.Paths(), plain.Paths())
	}
	for p := range got {
		if g, ok := d.Initial.Get(p); !ok || g.Path != p {
			t.Fatalf("Get(%q) = %+v, %v", p, g, ok)
		}
	}
	// ignored by a scan of paths, and by one against a known tree
	some, err := ScanDelta(ctx, root, nil, []string{"a"}, &States{}, nil, WithInitialStates())
	if err != nil {
		t.Fatal(err)
	}
	again, err := ScanDelta(ctx, root, nil, []string{""}, d.Initial, nil, WithInitialStates())
	if err != nil {
		t.Fatal(err)
	}
	if some.Initial != nil || len(some.States) == 0 || again.Initial != nil {
		t.Fatalf("WithInitialStates taken by a scan of paths (%v) or a rescan (%v)", some.Initial != nil, again.Initial != nil)
	}
}
