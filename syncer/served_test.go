package syncer

import (
	"fmt"
	"maps"
	"math/rand/v2"
	"os"
	"runtime"
	"testing"

	"pbxsync/internal/index"
)

// TestServedSet: through random serves, re-serves and removals of a pool
// of contents (enough to fold the changes into the array several times,
// from memory and from its file: the base is moved into a file every
// 5,000 steps), a servedSet answers as a map would: get, len and all;
// no file is left in the directory.
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
	dir := t.TempDir()
	compactions, fromFile := 0, 0
	for step := range 40000 {
		if step%5000 == 2500 {
			if err := s.spill(dir); err != nil {
				t.Fatal(err)
			}
			if s.base != nil || s.file == nil {
				t.Fatalf("step %d: the base is still in memory", step)
			}
		}
		inFile := s.file != nil
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
			if inFile {
				fromFile++
			}
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
	if compactions < 3 || fromFile < 2 {
		t.Fatalf("the changes were folded into the array %d times, %d of them from its file; the test means to cover both", compactions, fromFile)
	}
	if err := s.failed(); err != nil {
		t.Fatal(err)
	}
	s.release()
	if left, _ := os.ReadDir(dir); len(left) != 0 {
		t.Fatalf("%d files left in the directory", len(left))
	}
	var none *servedSet
	if _, ok := none.get(pool[0]); ok || none.len() != 0 {
		t.Fatal("a nil set serves something")
	}
}

// TestServedSetFileReadError: a set whose file cannot be read serves
// nothing of its base (never a wrong size), says why, and does not fold
// its changes into a base it could not read whole.
func TestServedSetFileReadError(t *testing.T) {
	t.Parallel()
	ref := map[index.Hash]int64{}
	for i := range 3000 {
		ref[index.Sum(fmt.Append(nil, i))] = int64(i)
	}
	s := newServedSet(ref)
	if err := s.spill(t.TempDir()); err != nil {
		t.Fatal(err)
	}
	h := index.Sum(fmt.Append(nil, 7))
	if n, ok := s.get(h); !ok || n != 7 {
		t.Fatalf("get = %d, %v from the file; want 7, true", n, ok)
	}
	s.file.f.Close() // what a read error looks like
	if _, ok := s.get(h); ok {
		t.Fatal("served content whose entry could not be read")
	}
	if s.failed() == nil {
		t.Fatal("failed() is nil after a read error")
	}
	for i := range 2000 { // enough changes to fold
		s.set(index.Sum(fmt.Append(nil, "new", i)), 1)
	}
	if s.file == nil || len(s.over) < 2000 {
		t.Fatal("folded its changes into a base it could not read")
	}
}

// TestServedOf: the set and counts built from an index at once are those
// adding its files one by one gives, shared content included.
func TestServedOf(t *testing.T) {
	t.Parallel()
	x := idx(dir("d", 0o755, 1))
	for i := range 2000 {
		it := file(fmt.Sprintf("d/f%04d", i), fmt.Sprint(i%1500), 0o644, 1)
		x.Set(it)
	}
	s, refs := servedOf(x)
	ref, rrefs := &servedSet{}, newServedRefs()
	for it := range x.Items() {
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
	x := index.New(0)
	for i := range 100000 {
		p := fmt.Sprintf("site%03d/endpoint%05d.conf", i%100, i)
		x.Set(index.Item{Path: p, Kind: index.KindFile, Size: int64(i), Hash: index.Sum([]byte(p))})
	}
	heap := func() int64 {
		runtime.GC()
		var m runtime.MemStats
		runtime.ReadMemStats(&m)
		return int64(m.HeapAlloc)
	}
	h0 := heap()
	j := &job{}
	j.offer(x, index.Index{})
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
