package hostmon

import (
	"fmt"
	"maps"
	"math/rand/v2"
	"reflect"
	"runtime"
	"slices"
	"testing"
	"unsafe"

	"pbxsync/internal/index"
)

// testState returns a state of p whose fields all derive from i.
func testState(p string, i int, v index.Vector) FileState {
	return FileState{Item: index.Item{Path: p, Size: int64(i), MTime: int64(i) << 20, Hash: index.Sum([]byte(fmt.Sprint(p, i))),
		Version: v, Mode: 0o640, Kind: index.KindFile, Deleted: i%7 == 0}, Dev: uint64(i % 3), Inode: uint64(i), CTime: int64(i) << 21}
}

// checkStates fails unless s holds exactly want, through every way to read
// it.
func checkStates(t *testing.T, step string, s *States, want map[string]FileState) {
	t.Helper()
	if s.Len() != len(want) {
		t.Fatalf("%s: Len %d, want %d", step, s.Len(), len(want))
	}
	got := map[string]FileState{}
	for p, st := range s.All() {
		if _, dup := got[p]; dup {
			t.Fatalf("%s: All yields %q twice", step, p)
		}
		got[p] = st
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("%s: All holds %d states, want %d", step, len(got), len(want))
	}
	for p, st := range want {
		if g, ok := s.Get(p); !ok || !reflect.DeepEqual(g, st) {
			t.Fatalf("%s: Get(%q) = %+v, %v; want %+v", step, p, g, ok, st)
		}
	}
	if _, ok := s.Get("no/such/path"); ok {
		t.Fatalf("%s: Get of a path never set", step)
	}
	x := s.Index()
	if x.Len() != len(want) {
		t.Fatalf("%s: Index has %d items, want %d", step, x.Len(), len(want))
	}
	for p, st := range want {
		if g, ok := x.Get(p); !ok || !reflect.DeepEqual(g, st.Item) {
			t.Fatalf("%s: Index[%q] = %+v, %v; want %+v", step, p, g, ok, st.Item)
		}
	}
}

// TestStatesAsMap: every sequence of sets and deletes leaves States
// holding what a map would, before and after its changes are folded into
// its array (compaction), and whether they were loaded in order or not.
func TestStatesAsMap(t *testing.T) {
	t.Parallel()
	vecs := []index.Vector{nil, {{Node: "a", Value: 1}}, {{Node: "a", Value: 2}, {Node: "b", Value: 1}}}
	for _, tc := range []struct {
		name   string
		n      int  // paths
		ops    int  // random sets and deletes after the load
		sorted bool // the load comes in path order (loadScan)
	}{
		{"empty", 0, 0, true},
		{"one", 1, 3, true},
		{"sorted load, a few changes", 500, 50, true},
		{"unsorted load", 500, 50, false},
		{"changes past compaction", 3000, 5000, true},
		{"unsorted, changes past compaction", 3000, 5000, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			r := rand.New(rand.NewPCG(uint64(tc.n), uint64(tc.ops)))
			paths := make([]string, tc.n)
			for i := range paths {
				paths[i] = fmt.Sprintf("d%02d/f%05d.conf", i%17, i)
			}
			if tc.sorted {
				slices.Sort(paths)
			}
			want := map[string]FileState{}
			s := &States{}
			for i, p := range paths {
				st := testState(p, i, vecs[i%len(vecs)])
				s.Set(st)
				want[p] = st
			}
			checkStates(t, "load", s, want)
			if tc.sorted && tc.n > 0 {
				s.Compact()
				if cap(s.base)-len(s.base) > len(s.base)/8 {
					t.Fatalf("a compacted load keeps room for %d more records", cap(s.base)-len(s.base))
				}
				checkStates(t, "load compacted", s, want)
			}
			compacted := false
			for k := range tc.ops {
				p := paths[r.IntN(len(paths))]
				if r.IntN(4) == 0 {
					p = fmt.Sprintf("new/%d", r.IntN(tc.ops)) // a new path, maybe set before
				}
				if r.IntN(3) == 0 {
					s.Delete(p)
					delete(want, p)
				} else {
					st := testState(p, k, vecs[k%len(vecs)])
					s.Set(st)
					want[p] = st
				}
				if len(s.over) == 0 && k > 0 {
					compacted = true
				}
				if k%997 == 0 {
					checkStates(t, fmt.Sprint("op ", k), s, want)
				}
			}
			if tc.ops >= 5000 && !compacted {
				t.Fatal("5000 changes were never folded into the array")
			}
			checkStates(t, "after the changes", s, want)
			s.Compact()
			if len(s.over) != 0 || len(s.base) != len(want) {
				t.Fatalf("after Compact: %d in the array, %d beside it; want %d and 0", len(s.base), len(s.over), len(want))
			}
			checkStates(t, "compacted", s, want)
			if len(s.vecs) > len(vecs)-1 {
				t.Fatalf("%d vectors kept for %d distinct ones", len(s.vecs), len(vecs)-1)
			}
			checkStates(t, "NewStates", NewStates(want), want)
		})
	}
}

// TestStatesDeleteWhileIterating: as with a map, an iteration may delete
// what it meets (keepLastKnown does), and meets every entry once even
// when the deletes would fold the changes into the array.
func TestStatesDeleteWhileIterating(t *testing.T) {
	t.Parallel()
	want := map[string]FileState{}
	for i := range 5000 {
		p := fmt.Sprintf("d%d/f%04d", i%5, i)
		want[p] = testState(p, i, nil)
	}
	s := NewStates(want)
	met := map[string]bool{}
	for p := range s.Paths() {
		if met[p] {
			t.Fatalf("met %q twice", p)
		}
		met[p] = true
		s.Delete(p)
	}
	if len(met) != len(want) || s.Len() != 0 {
		t.Fatalf("met %d of %d; %d left", len(met), len(want), s.Len())
	}
	checkStates(t, "all deleted", s, map[string]FileState{})
	s.Compact()
	checkStates(t, "compacted", s, map[string]FileState{})
}

// TestStatesKeepFirstPath: a path set again keeps the string it was set
// with first, so that a scan's or a watcher's copy of it is not kept
// beside the one the states (and the newest index) already hold.
func TestStatesKeepFirstPath(t *testing.T) {
	t.Parallel()
	first := "d/" + string([]byte("f.conf"))
	s := NewStates(map[string]FileState{first: testState(first, 1, nil)})
	again := "d/" + string([]byte("f.conf"))
	s.Set(testState(again, 2, nil))
	s.Compact()
	for p, st := range s.All() {
		if !samePointer(p, first) || !samePointer(st.Path, first) {
			t.Fatal("a path set again holds the new copy of its string")
		}
	}
	// beside the array, before a compaction
	s.Set(testState(again, 3, nil))
	if st, _ := s.Get("d/f.conf"); !samePointer(st.Path, first) {
		t.Fatal("a changed path holds the new copy of its string")
	}
}

// samePointer reports whether a and b are the same string in memory.
func samePointer(a, b string) bool {
	return len(a) == len(b) && unsafe.StringData(a) == unsafe.StringData(b)
}

// hundredStates returns the states of f000 to f099.
func hundredStates() map[string]FileState {
	m := map[string]FileState{}
	for i := range 100 {
		p := fmt.Sprintf("f%03d", i)
		m[p] = testState(p, i, nil)
	}
	return m
}

// TestStatesApply: States.Apply of a Delta does what Delta.Apply does to
// a map.
func TestStatesApply(t *testing.T) {
	t.Parallel()
	m := hundredStates()
	s := NewStates(m)
	d := Delta{States: map[string]FileState{"f001": testState("f001", 1001, nil), "new": testState("new", 7, nil)},
		Removed: []string{"f002", "f050"}}
	d.Apply(m)
	s.Apply(d)
	checkStates(t, "applied", s, m)
	if got := slices.Sorted(maps.Keys(s.Map())); !slices.Equal(got, slices.Sorted(maps.Keys(m))) {
		t.Fatal("Map disagrees")
	}
}

// BenchmarkStatesGet looks up a path among 100,000, in a map and in
// States: a full rescan (a restart's) looks up every path a few times.
func BenchmarkStatesGet(b *testing.B) {
	m := map[string]FileState{}
	var paths []string
	for i := range 100000 {
		p := fmt.Sprintf("site%03d/endpoint%04d.conf", i%100, i)
		m[p] = testState(p, i, nil)
		paths = append(paths, p)
	}
	for name, prev := range map[string]Prev{"map": StateMap(m), "states": NewStates(m)} {
		b.Run(name, func(b *testing.B) {
			i := 0
			for b.Loop() {
				if _, ok := prev.Get(paths[i%len(paths)]); !ok {
					b.Fatal("not found")
				}
				i += 7919
			}
		})
	}
}

// BenchmarkStatesMemory reports the heap 100,000 scan states take as a map
// and as States (bytes a path, the path strings not counted: both share
// them).
func BenchmarkStatesMemory(b *testing.B) {
	const n = 100000
	paths := make([]string, n)
	for i := range paths {
		paths[i] = fmt.Sprintf("site%03d/endpoint%04d.conf", i%100, i)
	}
	v := index.Vector{{Node: "source-node", Value: 1}}
	heap := func() uint64 {
		runtime.GC()
		var m runtime.MemStats
		runtime.ReadMemStats(&m)
		return m.HeapAlloc
	}
	for b.Loop() {
		h0 := heap()
		m := map[string]FileState{}
		for i, p := range paths {
			m[p] = testState(p, i, v) // a scan's map grows as it walks
		}
		h1 := heap()
		s := NewStates(m)
		m = nil
		h2 := heap()
		b.ReportMetric(float64(h1-h0)/n, "map-B/path")
		b.ReportMetric(float64(h2-h0)/n, "states-B/path") // the map is gone by h2
		runtime.KeepAlive(s)
	}
}

// TestStatesSetWhileIterating: a state changed during an iteration, before
// the iteration meets it, is met once, as changed.
func TestStatesSetWhileIterating(t *testing.T) {
	t.Parallel()
	m := hundredStates()
	s := NewStates(m)
	met := map[string]FileState{}
	for p, st := range s.All() {
		if _, dup := met[p]; dup {
			t.Fatalf("met %q twice", p)
		}
		met[p] = st
		if p == "f010" {
			s.Set(testState("f090", 1090, nil))
		}
	}
	if len(met) != 100 || met["f090"].Size != 1090 {
		t.Fatalf("met %d states, f090 of size %d; want 100 and the changed one", len(met), met["f090"].Size)
	}
}

// TestStatesGrowFor: room made for states that come after every path
// held is allocated once (the n appends copy nothing); none is made for
// states that would not append (a path held after the first of them, or
// changes over the base), and what s holds is the same either way.
func TestStatesGrowFor(t *testing.T) {
	want := map[string]FileState{}
	s := &States{}
	set := func(p string, i int) {
		st := testState(p, i, nil)
		s.Set(st)
		want[p] = st
	}
	set("a", 1)
	s.GrowFor("b/0000", 1000)
	if c := cap(s.base); c < 1001 {
		t.Fatalf("GrowFor(1000) left room for %d records", c)
	}
	base := unsafe.SliceData(s.base)
	for i := range 1000 {
		set(fmt.Sprintf("b/%04d", i), i+2)
	}
	if unsafe.SliceData(s.base) != base {
		t.Error("the 1,000 states GrowFor made room for were copied to a new array")
	}
	checkStates(t, "after the appends", s, want)

	c := cap(s.base)
	s.GrowFor("a/x", 5000) // "b/0999" is held after it
	s.GrowFor("", 5000)
	if cap(s.base) != c {
		t.Errorf("GrowFor before the last path held grew the records from %d to %d", c, cap(s.base))
	}
	set("a/x", 7) // not after every path: an overlaid change
	s.GrowFor("c", 5000)
	if cap(s.base) != c {
		t.Errorf("GrowFor over changes grew the records from %d to %d", c, cap(s.base))
	}
	checkStates(t, "after an overlaid change", s, want)
}
