package index

import (
	"fmt"
	"math/rand/v2"
	"runtime"
	"strconv"
	"testing"
)

// checkModel fails t unless x holds exactly the items of model: Len, Get
// of each, and All yielding each once and nothing else.
func checkModel(t testing.TB, step int, x Index, model map[string]Item) {
	t.Helper()
	if x.Len() != len(model) {
		t.Fatalf("step %d: Len %d, want %d", step, x.Len(), len(model))
	}
	for p, want := range model {
		got, ok := x.Get(p)
		if !ok || !got.Equal(&want) {
			t.Fatalf("step %d: Get(%q) = %+v, %v; want %+v", step, p, got, ok, want)
		}
	}
	seen := make(map[string]bool, len(model))
	for p, it := range x.All() {
		if seen[p] {
			t.Fatalf("step %d: All yielded %q twice", step, p)
		}
		seen[p] = true
		if it.Path != p {
			t.Fatalf("step %d: All yielded %q with the item of %q", step, p, it.Path)
		}
		if _, ok := model[p]; !ok {
			t.Fatalf("step %d: All yielded %q, which is not in the index", step, p)
		}
	}
	if len(seen) != len(model) {
		t.Fatalf("step %d: All yielded %d items, want %d", step, len(seen), len(model))
	}
}

// runOps applies the operations ops encodes to an Index and to a map
// beside it, checking they agree: set (new or existing path), delete
// (present or absent), clone, and a range that deletes and sets as it
// goes. The paths come from a small set, so that the same ones are set,
// deleted and set again and the table wraps around and compacts.
func runOps(t testing.TB, ops []byte, paths int) {
	x := New(0)
	model := map[string]Item{}
	path := func(b byte) string { return "d" + strconv.Itoa(int(b)%7) + "/f" + strconv.Itoa(int(b)%paths) }
	for i := 0; i+1 < len(ops); i += 2 {
		op, arg := ops[i]%8, ops[i+1]
		p := path(arg)
		switch op {
		case 0, 1, 2:
			it := Item{Path: p, Kind: KindFile, Size: int64(i), Hash: Sum([]byte{arg})}
			x.Set(it)
			model[p] = it
		case 3, 4:
			x.Delete(p)
			delete(model, p)
		case 5:
			c := x.Clone()
			checkModel(t, i, c, model)
			c.Set(Item{Path: "clone-only", Kind: KindDir})
			c.Delete(p)
			if x.Has("clone-only") || x.Len() != len(model) {
				t.Fatalf("step %d: changing a clone changed the original", i)
			}
		case 6:
			// a range that deletes what it meets every other item and a
			// path further on, and sets a new one: deleted items not yet
			// reached are not yielded, none twice (a path deleted and set
			// again is a new entry, as in a map)
			seen := map[string]bool{}
			gone := map[string]bool{}
			n := 0
			for q, it := range x.All() {
				if seen[q] || gone[q] {
					t.Fatalf("step %d: range yielded %q again or after its delete", i, q)
				}
				seen[q] = true
				if it.Path != q {
					t.Fatalf("step %d: range yielded %q with %q", i, q, it.Path)
				}
				n++
				if n%2 == 0 {
					x.Delete(q)
					delete(model, q)
					gone[q] = true
				}
				if other := path(arg + byte(n)); n%3 == 0 && other != q {
					x.Delete(other)
					delete(model, other)
					gone[other] = true
				}
				if n == 5 {
					nw := Item{Path: path(arg + 101), Kind: KindFile, Size: -1}
					x.Set(nw)
					model[nw.Path] = nw
					delete(gone, nw.Path) // a new entry: it may be yielded,
					delete(seen, nw.Path) // even when its path was before
				}
			}
		case 7:
			want := model[p]
			if got, ok := x.Get(p); ok != (want.Path != "") || (ok && !got.Equal(&want)) {
				t.Fatalf("step %d: Get(%q) = %+v, %v against %+v", i, p, got, ok, model[p])
			}
		}
		checkModel(t, i, x, model)
	}
}

// TestIndexAgainstMap drives an Index and a map with the same random
// operations (among them ranges that change the index as they go) and
// checks after each that they hold the same items.
func TestIndexAgainstMap(t *testing.T) {
	for seed := range uint64(20) {
		rng := rand.New(rand.NewPCG(seed, 7))
		ops := make([]byte, 4000)
		for i := range ops {
			ops[i] = byte(rng.IntN(256))
		}
		paths := []int{3, 40, 200}[seed%3]
		runOps(t, ops, paths)
	}
}

// FuzzIndex: any sequence of operations keeps an Index and a map in
// agreement.
func FuzzIndex(f *testing.F) {
	f.Add([]byte{0, 1, 0, 2, 3, 1, 6, 0, 5, 2}, uint8(40))
	f.Add([]byte{0, 1, 0, 2, 0, 3, 0, 4, 6, 9, 6, 1, 3, 2, 3, 3, 7, 2}, uint8(3))
	f.Fuzz(func(t *testing.T, ops []byte, paths uint8) {
		runOps(t, ops, int(paths)%250+1)
	})
}

// TestIndexLargeDeletes: deleting most of a large index keeps it
// consistent through the compactions, and the items left are found.
func TestIndexLargeDeletes(t *testing.T) {
	x := New(0)
	model := map[string]Item{}
	for i := range 20000 {
		it := Item{Path: "p/" + strconv.Itoa(i), Kind: KindFile, Size: int64(i)}
		x.Set(it)
		model[it.Path] = it
	}
	for i := 0; i < 20000; i++ {
		if i%10 != 3 {
			p := "p/" + strconv.Itoa(i)
			x.Delete(p)
			delete(model, p)
		}
	}
	checkModel(t, 0, x, model)
	if x.t.ndead > x.t.n/2 {
		t.Fatalf("%d of %d positions deleted after the deletes: no compaction", x.t.ndead, x.t.n)
	}
	for i := range 5000 {
		it := Item{Path: "q/" + strconv.Itoa(i), Kind: KindDir}
		x.Set(it)
		model[it.Path] = it
	}
	checkModel(t, 1, x, model)
}

// TestZeroIndex: the zero Index reads as empty and panics when set, as a
// nil map does.
func TestZeroIndex(t *testing.T) {
	var x Index
	if !x.IsNil() || x.Len() != 0 || x.Has("a") || x.Same(Index{}) {
		t.Fatal("the zero Index does not read as empty")
	}
	for range x.All() {
		t.Fatal("the zero Index yielded an item")
	}
	x.Delete("a")
	defer func() {
		if recover() == nil {
			t.Fatal("Set on the zero Index did not panic")
		}
	}()
	x.Set(Item{Path: "a"})
}

// TestOfAndSameItems: Of keys items by path, SameItems compares them by
// value (version vectors too), whatever the order they were set in.
func TestOfAndSameItems(t *testing.T) {
	a := Item{Path: "a", Kind: KindFile, Size: 1, Version: Vector{}.Bump("n1")}
	b := Item{Path: "b", Kind: KindDir}
	x, y := Of(a, b), Of(b, a)
	if !SameItems(x, y) || x.Same(y) || !x.Same(x) {
		t.Fatal("Of(a, b) and Of(b, a) do not hold the same items, or are the same index")
	}
	a2 := a
	a2.Version = a.Version.Bump("n1")
	if SameItems(x, Of(a2, b)) || SameItems(x, Of(a)) || !SameItems(Index{}, New(3)) {
		t.Fatal("SameItems misses a version, a missing item, or an empty one")
	}
}

// TestIndexMemory: an index of 100,000 items grown one Set at a time
// holds at most 120 bytes per item (its items are 96; a map[string]Item
// of them held 150-190).
func TestIndexMemory(t *testing.T) {
	const n = 100000
	paths := make([]string, n)
	for i := range paths {
		paths[i] = fmt.Sprintf("site%03d/endpoint%05d.conf", i/1000, i)
	}
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	x := New(0)
	for _, p := range paths {
		x.Set(Item{Path: p, Kind: KindFile, Size: 1})
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	perItem := float64(int64(after.HeapAlloc)-int64(before.HeapAlloc)) / n
	runtime.KeepAlive(paths)
	if x.Len() != n {
		t.Fatalf("Len %d", x.Len())
	}
	if perItem > 120 {
		t.Fatalf("%.0f bytes per item, want at most 120", perItem)
	}
	t.Logf("%.1f bytes per item", perItem)
}

// benchPaths returns n paths shaped like a job's.
func benchPaths(n int) []string {
	paths := make([]string, n)
	for i := range paths {
		paths[i] = fmt.Sprintf("site%03d/endpoint%05d.conf", i/1000, i)
	}
	return paths
}

// BenchmarkIndexBuild sets 100,000 items one by one, against a
// map[string]Item (the type an index was).
func BenchmarkIndexBuild(b *testing.B) {
	paths := benchPaths(100000)
	b.Run("index", func(b *testing.B) {
		for b.Loop() {
			x := New(0)
			for _, p := range paths {
				x.Set(Item{Path: p, Kind: KindFile})
			}
		}
	})
	b.Run("map", func(b *testing.B) {
		for b.Loop() {
			x := map[string]Item{}
			for _, p := range paths {
				x[p] = Item{Path: p, Kind: KindFile}
			}
		}
	})
}

// BenchmarkIndexGet looks up every path of a 100,000-item index, against
// a map[string]Item.
func BenchmarkIndexGet(b *testing.B) {
	paths := benchPaths(100000)
	x := New(0)
	m := map[string]Item{}
	for _, p := range paths {
		x.Set(Item{Path: p, Kind: KindFile})
		m[p] = Item{Path: p, Kind: KindFile}
	}
	b.Run("index", func(b *testing.B) {
		for b.Loop() {
			for _, p := range paths {
				if _, ok := x.Get(p); !ok {
					b.Fatal(p)
				}
			}
		}
	})
	b.Run("map", func(b *testing.B) {
		for b.Loop() {
			for _, p := range paths {
				if _, ok := m[p]; !ok {
					b.Fatal(p)
				}
			}
		}
	})
}

// BenchmarkIndexRange ranges over a 100,000-item index, against a
// map[string]Item.
func BenchmarkIndexRange(b *testing.B) {
	paths := benchPaths(100000)
	x := New(0)
	m := map[string]Item{}
	for _, p := range paths {
		x.Set(Item{Path: p, Kind: KindFile, Size: 1})
		m[p] = Item{Path: p, Kind: KindFile, Size: 1}
	}
	b.Run("index", func(b *testing.B) {
		for b.Loop() {
			var s int64
			for _, it := range x.All() {
				s += it.Size
			}
		}
	})
	b.Run("map", func(b *testing.B) {
		for b.Loop() {
			var s int64
			for _, it := range m {
				s += it.Size
			}
		}
	})
}
