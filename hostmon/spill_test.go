package hostmon

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"runtime"
	"slices"
	"strings"
	"testing"

	"pbxsync/internal/index"
)

// TestStatesSpilledAsMap: a spilled States holds what a map would, through
// every way to read it, across changes, compactions (which bring its
// records back) and further spills; the file it spills to is gone from the
// directory at once.
func TestStatesSpilledAsMap(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	vecs := []index.Vector{nil, {{Node: "a", Value: 1}}, {{Node: "a", Value: 2}, {Node: "b", Value: 1}}}
	r := rand.New(rand.NewPCG(7, 11))
	const n = spillMin + 1000
	paths := make([]string, n)
	for i := range paths {
		// some paths longer than a read ahead of a record
		paths[i] = fmt.Sprintf("d%02d/%sf%05d.conf", i%17, strings.Repeat("x", (i%5)*100), i)
	}
	want := map[string]FileState{}
	for i, p := range paths {
		want[p] = testState(p, i, vecs[i%len(vecs)])
	}
	s := NewStates(want)
	spills := 0
	for round := range 6 {
		if err := s.Spill(dir); err != nil {
			t.Fatal(err)
		}
		if !s.Spilled() {
			t.Fatalf("round %d: %d paths did not spill", round, s.Len())
		}
		spills++
		if s.base != nil || s.slots != nil {
			t.Fatalf("round %d: a spilled States keeps %d records and %d slots in memory", round, len(s.base), len(s.slots))
		}
		if left, _ := os.ReadDir(dir); len(left) != 0 {
			t.Fatalf("round %d: the spill left %d files in its directory", round, len(left))
		}
		checkStates(t, fmt.Sprint("spilled ", round), s, want)
		// a few changes, as an event's: the records stay on disk
		for k := range 50 + round*40 {
			p := paths[r.IntN(len(paths))]
			if r.IntN(4) == 0 {
				p = fmt.Sprintf("new/%d", r.IntN(200))
			}
			if r.IntN(3) == 0 {
				s.Delete(p)
				delete(want, p)
			} else {
				st := testState(p, k+round*1000, vecs[k%len(vecs)])
				s.Set(st)
				want[p] = st
			}
		}
		checkStates(t, fmt.Sprint("spilled and changed ", round), s, want)
		if round%2 == 1 {
			s.Compact()
			if s.Spilled() || len(s.base) != len(want) {
				t.Fatalf("round %d: compacted, spilled %v, %d records in memory, want %d", round, s.Spilled(), len(s.base), len(want))
			}
			checkStates(t, fmt.Sprint("compacted ", round), s, want)
		}
	}
	// many changes fold the spilled records back into memory
	for k := range spillMin {
		p := fmt.Sprintf("more/%05d", k)
		st := testState(p, k, nil)
		s.Set(st)
		want[p] = st
	}
	if s.Spilled() {
		t.Fatalf("%d changes left the records on disk", spillMin)
	}
	checkStates(t, "after many changes", s, want)
	if err := s.Err(); err != nil {
		t.Fatal(err)
	}
	if small := NewStates(map[string]FileState{"a": testState("a", 1, nil)}); small.Spill(dir) != nil || small.Spilled() {
		t.Fatal("a one-path States spilled")
	}
}

// TestStatesSpillFreesMemory: spilling 100,000 states gives back the heap
// their records and lookup table took (what an idle job's scan state
// holds).
func TestStatesSpillFreesMemory(t *testing.T) {
	const n = 100000
	m, paths := siteStates(n)
	s := NewStates(m)
	m = nil
	before := heapAlloc()
	if err := s.Spill(t.TempDir()); err != nil {
		t.Fatal(err)
	}
	after := heapAlloc()
	freed := int64(before) - int64(after)
	t.Logf("spilling %d states freed %.1f MB (%d bytes a path)", n, float64(freed)/1e6, freed/n)
	if freed < 90*n { // records of 104 bytes and their slots; the paths stay (the caller's)
		t.Fatalf("spilling %d states freed %d bytes, want at least %d", n, freed, 90*n)
	}
	if st, ok := s.Get(paths[n/2]); !ok || st.Size != int64(n/2) {
		t.Fatalf("Get after the spill: %+v, %v", st, ok)
	}
	runtime.KeepAlive(paths)
}

// TestStatesSpillReadError: a spilled States whose file cannot be read
// says so (Err) and holds nothing from it, rather than guess.
func TestStatesSpillReadError(t *testing.T) {
	t.Parallel()
	s := NewStates(flatStates(spillMin))
	if err := s.Spill(t.TempDir()); err != nil {
		t.Fatal(err)
	}
	s.disk.f.Close()
	if _, ok := s.Get("f00001"); ok {
		t.Fatal("Get found a state in a file it cannot read")
	}
	if err := s.Err(); !errors.Is(err, os.ErrClosed) {
		t.Fatalf("Err = %v, want the read error", err)
	}
}

// TestStatesNoSpillWhileIterating: a States being iterated does not spill.
func TestStatesNoSpillWhileIterating(t *testing.T) {
	t.Parallel()
	s := NewStates(flatStates(spillMin))
	for range s.All() {
		if err := s.Spill(t.TempDir()); !errors.Is(err, errIterating) || s.Spilled() {
			t.Fatalf("Spill during an iteration: %v, spilled %v", err, s.Spilled())
		}
		break
	}
}

// TestStatesReadBack: a spilled States stays on disk for a few lookups and
// comes back into memory, whole and unchanged, once the lookups said to
// come since it spilled add up to a sixteenth of its paths; not while it
// is iterated.
func TestStatesReadBack(t *testing.T) {
	t.Parallel()
	const n = 8192
	m, _ := siteStates(n)
	s := NewStates(m)
	dir := t.TempDir()
	if err := s.Spill(dir); err != nil {
		t.Fatal(err)
	}
	s.ReadBack(n / readBackShare / 2)
	if !s.Spilled() {
		t.Fatalf("read back for %d lookups of %d paths", n/readBackShare/2, n)
	}
	for range s.All() {
		s.ReadBack(n / readBackShare / 2)
		if !s.Spilled() {
			t.Fatal("read back while iterated")
		}
		break
	}
	s.ReadBack(1)
	if s.Spilled() {
		t.Fatalf("still spilled after lookups of %d of %d paths", n/readBackShare+1, n)
	}
	checkStates(t, "read back", s, m)
	// the count starts again at the next spill
	if err := s.Spill(dir); err != nil {
		t.Fatal(err)
	}
	s.ReadBack(n / readBackShare / 2)
	if !s.Spilled() {
		t.Fatal("lookups before the last spill counted after it")
	}
	checkStates(t, "spilled again", s, m)
}

// BenchmarkStatesSpilledGet: a lookup in a spilled States (two preads)
// against one in memory.
func BenchmarkStatesSpilledGet(b *testing.B) {
	const n = 100000
	m, paths := siteStates(n)
	for _, spilled := range []bool{false, true} {
		s := NewStates(m)
		if spilled {
			if err := s.Spill(b.TempDir()); err != nil {
				b.Fatal(err)
			}
		}
		b.Run(fmt.Sprint("spilled=", spilled), func(b *testing.B) {
			i := 0
			for b.Loop() {
				if _, ok := s.Get(paths[i%n]); !ok {
					b.Fatal("missing")
				}
				i += 7919
			}
		})
	}
}

// TestStatesPathsUnder: the paths at and below a directory, in memory or
// spilled, with changes beside the array, are those a filter of every
// path finds, siblings whose names share the directory's as a prefix
// ("d1-x", "d10", "d1.conf") left out.
func TestStatesPathsUnder(t *testing.T) {
	t.Parallel()
	want := map[string]FileState{}
	add := func(p string, i int) { want[p] = testState(p, i, nil) }
	for i := range spillMin + 500 {
		add(fmt.Sprintf("d%d/f%05d.conf", i%12, i), i)
	}
	for i, p := range []string{"d1", "d10", "d1-x", "d1-x/a", "d1.conf", "d1/sub", "d1/sub/deep.conf", "e", "e/only"} {
		add(p, i)
	}
	filter := func(m map[string]FileState, dir string) []string {
		var out []string
		for p := range m {
			if dir == "" || p == dir || strings.HasPrefix(p, dir+"/") {
				out = append(out, p)
			}
		}
		slices.Sort(out)
		return out
	}
	check := func(step string, s *States) {
		t.Helper()
		for _, dir := range []string{"", "d1", "d10", "d1-x", "d1/sub", "d1/sub/deep.conf", "e", "nope", "d1/f00001.conf"} {
			got := slices.Sorted(s.PathsUnder(dir))
			if w := filter(want, dir); !slices.Equal(got, w) {
				t.Fatalf("%s: PathsUnder(%q): %d paths, want %d (first %v / %v)", step, dir, len(got), len(w), first(got), first(w))
			}
		}
	}
	s := NewStates(want)
	check("in memory", s)
	s.Delete("d1/f00001.conf")
	delete(want, "d1/f00001.conf")
	add("d1/new.conf", 1)
	s.Set(want["d1/new.conf"])
	s.Delete("e")
	delete(want, "e")
	check("in memory, changed", s)
	if err := s.Spill(t.TempDir()); err != nil {
		t.Fatal(err)
	}
	check("spilled", s)
	s.Delete("d1/sub")
	delete(want, "d1/sub")
	add("d1/sub2/x", 2)
	s.Set(want["d1/sub2/x"])
	add("d10/f00010.conf", 3) // changed, in base
	s.Set(want["d10/f00010.conf"])
	check("spilled, changed", s)
	if err := s.Err(); err != nil {
		t.Fatal(err)
	}
}

func first(ps []string) []string { return ps[:min(3, len(ps))] }

// flatStates returns n states of files f00000, f00001, ….
func flatStates(n int) map[string]FileState {
	m := make(map[string]FileState, n)
	for i := range n {
		p := fmt.Sprintf("f%05d", i)
		m[p] = testState(p, i, nil)
	}
	return m
}

// siteStates returns n states of files in 100 directories, as benchscale
// makes them, and their paths.
func siteStates(n int) (map[string]FileState, []string) {
	m := make(map[string]FileState, n)
	paths := make([]string, n)
	for i := range paths {
		paths[i] = fmt.Sprintf("site%03d/endpoint%04d.conf", i%100, i)
		m[paths[i]] = testState(paths[i], i, nil)
	}
	return m, paths
}

// heapAlloc returns the bytes of live heap objects after a collection.
func heapAlloc() uint64 {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc
}
