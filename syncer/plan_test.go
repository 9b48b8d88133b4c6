package syncer

import (
	"fmt"
	"io/fs"
	"math"
	"math/rand/v2"
	"reflect"
	"runtime"
	"slices"
	"strings"
	"testing"
	"unsafe"

	"pbxsync/internal/index"
)

func file(p, content string, mode uint32, mtime int64) index.Item {
	return index.Item{Path: p, Kind: index.KindFile, Size: int64(len(content)), Mode: fsMode(mode), MTime: mtime, Hash: index.Sum([]byte(content))}
}

func dir(p string, mode uint32, mtime int64) index.Item {
	return index.Item{Path: p, Kind: index.KindDir, Mode: fsMode(mode), MTime: mtime}
}

func idx(items ...index.Item) index.Index {
	return index.Of(items...)
}

func render(ops []Op) string {
	var parts []string
	for _, o := range ops {
		parts = append(parts, fmt.Sprintf("%s %s", o.Kind, o.Path))
	}
	return strings.Join(parts, "; ")
}

func TestPlan(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name       string
		have, want index.Index
		ops        string
	}{
		{"identical", idx(file("a", "x", 0o644, 1)), idx(file("a", "x", 0o644, 1)), ""},
		{"new file", idx(), idx(file("a", "x", 0o644, 1)), "write a"},
		{"modified", idx(file("a", "x", 0o644, 1)), idx(file("a", "y", 0o644, 2)), "write a"},
		{"same size other content", idx(file("a", "x", 0o644, 1)), idx(file("a", "z", 0o644, 1)), "write a"},
		{"mode only", idx(file("a", "x", 0o644, 1)), idx(file("a", "x", 0o640, 1)), "meta a"},
		{"mtime only", idx(file("a", "x", 0o644, 1)), idx(file("a", "x", 0o644, 5)), "meta a"},
		{"empty file", idx(), idx(file("e", "", 0o644, 1)), "write e"},
		{"deleted", idx(file("a", "x", 0o644, 1)), idx(), "delete a"},
		{"nested new dirs", idx(), idx(dir("s", 0o755, 1), dir("s/d", 0o755, 1), file("s/d/x", "hi", 0o644, 1)),
			"mkdir s; mkdir s/d; write s/d/x; dirmeta s/d; dirmeta s"},
		{"rename", idx(dir("s", 0o755, 1), dir("s/d", 0o755, 1), file("s/d/x", "hi", 0o644, 1)),
			idx(dir("s", 0o755, 2), file("s/y", "hi", 0o644, 1)),
			"delete s/d/x; rmdir s/d; write s/y; dirmeta s"},
		{"file becomes dir", idx(file("a", "x", 0o644, 1)), idx(dir("a", 0o755, 1), file("a/b", "y", 0o644, 1)),
			"delete a; mkdir a; write a/b; dirmeta a"},
		{"dir becomes file", idx(dir("a", 0o755, 1), file("a/b", "y", 0o644, 1)), idx(file("a", "x", 0o644, 1)),
			"delete a/b; rmdir a; write a"},
		{"deep tree removed deepest first", idx(dir("a", 0o755, 1), dir("a/b", 0o755, 1), dir("a/b/c", 0o755, 1)), idx(),
			"rmdir a/b/c; rmdir a/b; rmdir a"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := render(Plan(tc.have, tc.want)); got != tc.ops {
				t.Fatalf("plan:\n got %s\nwant %s", got, tc.ops)
			}
		})
	}
}

func TestPlanIsDeterministic(t *testing.T) {
	t.Parallel()
	want := idx()
	for i := 0; i < 200; i++ {
		it := file(fmt.Sprintf("d%d/f%d", i%7, i), fmt.Sprint(i), 0o644, int64(i))
		want.Set(it)
		want.Set(dir(fmt.Sprintf("d%d", i%7), 0o755, 1))
	}
	first := Plan(idx(), want)
	// an Index ranges in the order its items were set (a map ranged in
	// a random order): each round sets them in another order
	rng := rand.New(rand.NewPCG(5, 6))
	for i := 0; i < 20; i++ {
		items := want.Sorted()
		rng.Shuffle(len(items), func(a, b int) { items[a], items[b] = items[b], items[a] })
		if !reflect.DeepEqual(first, Plan(idx(), idx(items...))) {
			t.Fatal("Plan is not deterministic")
		}
	}
}

func TestChangedAndEqual(t *testing.T) {
	t.Parallel()
	a := idx(dir("d", 0o755, 1), file("d/x", "1", 0o644, 1), file("y", "2", 0o644, 1), file("z", "3", 0o644, 1))
	b := idx(dir("d", 0o755, 9), file("d/x", "1", 0o600, 1), file("y", "22", 0o644, 1), file("n", "4", 0o644, 1))
	if got := strings.Join(Changed(a, b), ","); got != "d/x,n,y,z" {
		t.Fatalf("Changed = %s", got)
	}
	if Equal(a, b) || !Equal(a, a.Clone()) {
		t.Fatal("Equal is wrong")
	}
	c := a.Clone()
	it, _ := c.Get("y")
	it.MTime = 7
	c.Set(it)
	if Equal(a, c) {
		t.Fatal("Equal ignores file mtime")
	}
	if len(Changed(a, c)) != 0 {
		t.Fatal("Changed counts an mtime-only change")
	}
}

func fsMode(m uint32) fs.FileMode { return fs.FileMode(m) & fs.ModePerm }

// TestPlanPaths: planning over the paths of a change gives the plan of the
// whole trees, whatever else they hold in common; a path listed twice, or
// held by neither tree, adds nothing.
func TestPlanPaths(t *testing.T) {
	t.Parallel()
	common := idx()
	for i := range 1000 {
		it := file(fmt.Sprintf("big/f%04d", i), fmt.Sprint(i), 0o644, 1)
		common.Set(it)
	}
	common.Set(dir("big", 0o755, 1))
	with := func(x index.Index, items ...index.Item) index.Index {
		out := x.Clone()
		for _, it := range items {
			out.Set(it)
		}
		return out
	}
	without := func(x index.Index, paths ...string) index.Index {
		out := x.Clone()
		for _, p := range paths {
			out.Delete(p)
		}
		return out
	}
	cases := []struct {
		name       string
		have, want index.Index
		paths      []string
		ops        string
	}{
		{"one edit", common, with(common, file("big/f0042", "edited", 0o644, 2), dir("big", 0o755, 2)),
			[]string{"big/f0042", "big"}, "write big/f0042; dirmeta big"},
		{"listed twice", common, with(common, file("big/f0042", "edited", 0o644, 2)),
			[]string{"big/f0042", "big/f0042", "nowhere"}, "write big/f0042"},
		{"mode only", common, with(common, file("big/f0001", "1", 0o600, 1)), []string{"big/f0001"}, "meta big/f0001"},
		{"deleted", common, without(common, "big/f0007"), []string{"big/f0007"}, "delete big/f0007"},
		{"file becomes dir", common, with(without(common, "big/f0003"), dir("big/f0003", 0o755, 1), file("big/f0003/x", "y", 0o644, 1)),
			[]string{"big/f0003/x", "big/f0003"}, "delete big/f0003; mkdir big/f0003; write big/f0003/x; dirmeta big/f0003"},
		{"dir becomes file", with(common, dir("n", 0o755, 1), file("n/a", "a", 0o644, 1)), with(common, file("n", "x", 0o644, 1)),
			[]string{"n", "n/a"}, "delete n/a; rmdir n; write n"},
		{"unchanged", common, common, []string{"big/f0001", "big"}, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got := render(PlanPaths(IndexLookup(tc.have), IndexLookup(tc.want), tc.paths))
			if got != tc.ops {
				t.Fatalf("plan:\n got %s\nwant %s", got, tc.ops)
			}
			if full := render(Plan(tc.have, tc.want)); full != got {
				t.Fatalf("differs from the plan of the whole trees:\n got %s\nfull %s", got, full)
			}
		})
	}
}

// TestPlanPathsInitialSyncMemory: the plan of an initial sync (100,000 new
// files in 100 directories, over its sorted changed paths) allocates its
// ops once, with no second slice the writes are copied into and no set of
// the paths (which would double the ~22 MB it holds at the apply's start);
// over the same paths shuffled and listed twice, the plan is the same.
func TestPlanPathsInitialSyncMemory(t *testing.T) {
	const n = 100000
	want := index.New(0)
	for d := range 100 {
		dp := fmt.Sprintf("site%03d", d)
		want.Set(dir(dp, 0o755, 1))
		for i := range n / 100 {
			it := file(fmt.Sprintf("%s/endpoint%05d.conf", dp, i), fmt.Sprint(d, i), 0o644, 1)
			want.Set(it)
		}
	}
	paths := Changed(index.Index{}, want)
	have, wantL := IndexLookup(index.Index{}), IndexLookup(want)
	// the least of three plans: what another test's goroutines allocate
	// meanwhile is not counted against it
	var ops []Op
	got := uint64(math.MaxUint64)
	for range 3 {
		var m0, m1 runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&m0)
		ops = PlanPaths(have, wantL, paths)
		runtime.ReadMemStats(&m1)
		got = min(got, m1.TotalAlloc-m0.TotalAlloc)
	}
	if len(ops) != n+200 {
		t.Fatalf("%d ops, want %d", len(ops), n+200)
	}
	opSize := uint64(unsafe.Sizeof(Op{}))
	// an op holds its path, a pointer to what is there now (Prior, nil
	// for every op of an initial sync) and its kind: not the Prior itself
	// (72 bytes an op), nor the desired item (168), nor both whole (216)
	if wantSize := uint64(unsafe.Sizeof("") + unsafe.Sizeof(&Prior{}) + 8); opSize > wantSize {
		t.Fatalf("an op is %d bytes, want at most %d", opSize, wantSize)
	}
	if bound := (uint64(len(paths))+uint64(len(paths))/16+4)*opSize + 256<<10; got > bound {
		t.Fatalf("planning %d paths allocated %d bytes, want at most %d (%d ops of %d bytes, once)", len(paths), got, bound, len(ops), opSize)
	}
	shuffled := slices.Clone(paths)
	rand.New(rand.NewPCG(1, 2)).Shuffle(len(shuffled), func(i, j int) { shuffled[i], shuffled[j] = shuffled[j], shuffled[i] })
	shuffled = append(shuffled, paths[:1000]...)
	if !reflect.DeepEqual(PlanPaths(have, wantL, shuffled), ops) {
		t.Fatal("the plan over the paths shuffled and some listed twice differs")
	}
	// a plan with more ops than room beside its writes (every path a new
	// directory: a mkdir and a dirmeta each)
	dirs := index.New(0)
	for i := range 1000 {
		p := fmt.Sprintf("d%04d", i)
		dirs.Set(dir(p, 0o755, 1))
	}
	if got, full := render(PlanPaths(have, IndexLookup(dirs), Changed(index.Index{}, dirs))), render(Plan(index.Index{}, dirs)); got != full || strings.Count(got, "mkdir") != 1000 || strings.Count(got, "dirmeta") != 1000 {
		t.Fatalf("plan of 1000 new directories: %.200s", got)
	}
}

// TestPlanPathsListsWhatThePlanTouches: planPaths (refresh's paths, made
// without a plan) lists the paths of opPaths(Plan(have, want)), over
// random pairs of trees that differ in every way Plan tells apart: kind,
// content, size, mode, mtime, a path on one side only, a directory whose
// metadata alone differs with or without a change below it.
func TestPlanPathsListsWhatThePlanTouches(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	names := []string{"a", "a/b", "a/b/c.conf", "a/d.conf", "e", "e/f.conf", "e/g", "e/g/h.conf", "i.conf"}
	item := func(p string) index.Item {
		m, mt := []uint32{0o644, 0o600}[rng.IntN(2)], int64(rng.IntN(2))
		if rng.IntN(3) == 0 {
			return dir(p, m, mt)
		}
		return file(p, []string{"x", "y", "yy"}[rng.IntN(3)], m, mt)
	}
	tree := func() index.Index {
		x := index.New(0)
		for _, p := range names {
			if rng.IntN(4) > 0 {
				x.Set(item(p))
			}
		}
		return x
	}
	set := func(ps []string) map[string]bool {
		m := map[string]bool{}
		for _, p := range ps {
			m[p] = true
		}
		return m
	}
	for i := range 2000 {
		have, want := tree(), tree()
		if i%3 == 0 { // mostly alike: metadata-only differences matter
			want = have.Clone()
			for _, it := range want.All() {
				if rng.IntN(3) == 0 {
					it.MTime++
					want.Set(it)
				}
			}
		}
		got, wantPaths := set(planPaths(have, want)), set(opPaths(Plan(have, want)))
		if !reflect.DeepEqual(got, wantPaths) {
			t.Fatalf("have %v\nwant %v\nplanPaths %v, opPaths of the plan %v", have, want, got, wantPaths)
		}
		if n := len(planPaths(have, want)); n != len(got) {
			t.Fatalf("planPaths listed %d paths, %d of them distinct", n, len(got))
		}
	}
}
