package syncer

import (
	"fmt"
	"maps"
	"math/rand/v2"
	"runtime"
	"testing"

	"pbxsync/internal/index"
)

// TestServedSet: through random serves, re-serves and removals of a pool
// of contents (enough to fold the changes into the array several times),
// a servedSet answers as a map would: get, len and all.
func TestServedSet(t *testing.T) {
	t.Parallel()
	rng := rand.New(rand.NewPCG(5, 6))
	pool := make([]index.Hash, 6000)
	for i := range pool {
		pool[i] = index.Sum(fmt.Append(nil, i))
	}
	ref := map[index.Hash]int64{}
	for _, h := range pool[:3000] {
		ref[h] = rng.Int64N(1 << 20)
	}
	s := newServedSet(ref)
	compactions := 0
	for step := range 40000 {
		h := pool[rng.IntN(len(pool))]
		overBefore := len(s.over)
		if rng.IntN(3) == 0 {
			delete(ref, h)
			s.del(h)
		} else {
			n := rng.Int64N(4) // sizes repeat: a re-serve of the same size changes nothing
			ref[h] = n
			s.set(h, n)
		}
		if len(s.over) < overBefore {
			compactions++
		}
		if step%997 == 0 || step == 39999 {
			if s.len() != len(ref) {
				t.Fatalf("step %d: len %d, want %d", step, s.len(), len(ref))
			}
			if got := maps.Collect(s.all()); !maps.Equal(got, ref) {
				t.Fatalf("step %d: all yields %d contents, differing from the %d served", step, len(got), len(ref))
			}
			for _, h := range pool {
				n, ok := s.get(h)
				if want, served := ref[h]; ok != served || n != want {
					t.Fatalf("step %d: get(%s) = %d, %v; want %d, %v", step, h.Short(), n, ok, want, served)
				}
			}
		}
	}
	if compactions < 3 {
		t.Fatalf("the changes were folded into the array %d times; the test means to cover it", compactions)
	}
	var none *servedSet
	if _, ok := none.get(pool[0]); ok || none.len() != 0 {
		t.Fatal("a nil set serves something")
	}
}

// TestServedOf: the set and counts built from an index at once are those
// adding its files one by one gives, shared content included.
func TestServedOf(t *testing.T) {
	t.Parallel()
	x := idx(dir("d", 0o755, 1))
	for i := range 2000 {
		it := file(fmt.Sprintf("d/f%04d", i), fmt.Sprint(i%1500), 0o644, 1)
		x[it.Path] = it
	}
	s, refs := servedOf(x)
	ref, rrefs := &servedSet{}, newServedRefs()
	for _, it := range x {
		if it.Kind == index.KindFile {
			rrefs.add(ref, it.Hash, it.Size)
		}
	}
	if s.len() != 1500 || !maps.Equal(maps.Collect(s.all()), maps.Collect(ref.all())) {
		t.Fatalf("servedOf serves %d contents, adding the files %d", s.len(), ref.len())
	}
	if !maps.Equal(refs.dup, rrefs.dup) || len(refs.dup) != 500 {
		t.Fatalf("servedOf counts %d contents of two files, adding them %d; want 500", len(refs.dup), len(rrefs.dup))
	}
}

// TestServedSetMemory: the served set of a 100,000-file generation takes
// at most 50 bytes a content (41 measured: the 40-byte entries and the
// starts table; the
// margin is for what other goroutines of the test binary allocate
// meanwhile), where a map[index.Hash]int64 took 63.
func TestServedSetMemory(t *testing.T) {
	x := index.Index{}
	for i := range 100000 {
		p := fmt.Sprintf("site%03d/endpoint%05d.conf", i%100, i)
		x[p] = index.Item{Path: p, Kind: index.KindFile, Size: int64(i), Hash: index.Sum([]byte(p))}
	}
	heap := func() int64 {
		runtime.GC()
		var m runtime.MemStats
		runtime.ReadMemStats(&m)
		return int64(m.HeapAlloc)
	}
	h0 := heap()
	j := &job{}
	j.offer(x, nil)
	held := heap() - h0
	runtime.KeepAlive(j)
	runtime.KeepAlive(x)
	if per := float64(held) / 100000; per > 50 {
		t.Fatalf("the served set holds %.1f bytes a content at 100,000, want at most 50", per)
	}
}

// BenchmarkServedGet looks up a content among 100,000 served, as a
// transfer does for every file it serves.
func BenchmarkServedGet(b *testing.B) {
	m := map[index.Hash]int64{}
	var hs []index.Hash
	for i := range 100000 {
		h := index.Sum(fmt.Append(nil, i))
		m[h] = int64(i)
		hs = append(hs, h)
	}
	s := newServedSet(m)
	i := 0
	for b.Loop() {
		if _, ok := s.get(hs[i%len(hs)]); !ok {
			b.Fatal("not served")
		}
		i += 7919
	}
}

// BenchmarkServedOffers serves 100,000 contents one by one, as a
// source's offers do before its first generation (the changes folded into
// the array as they grow).
func BenchmarkServedOffers(b *testing.B) {
	hs := make([]index.Hash, 100000)
	for i := range hs {
		hs[i] = index.Sum(fmt.Append(nil, i))
	}
	for b.Loop() {
		s := &servedSet{}
		for i, h := range hs {
			s.set(h, int64(i))
		}
	}
}
