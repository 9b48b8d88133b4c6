package syncer

import (
	"math/rand/v2"
	"runtime"
	"testing"

	"pbxsync/internal/index"
)

// TestPrestagedSet drives a prestagedSet and a map beside it with random
// adds (new and repeated contents), takes and lookups, and checks they
// agree: a content is taken once, an add of one there to take is
// refused (one taken may come again), each lists what is left.
func TestPrestagedSet(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	var s prestagedSet
	type rec struct {
		id    uint64
		meta  stagedMeta
		taken bool
	}
	model := map[index.Hash]*rec{}
	live := 0
	hash := func() index.Hash { return index.Sum([]byte{byte(rng.IntN(256)), byte(rng.IntN(8))}) }
	for step := range 20000 {
		h := hash()
		switch rng.IntN(3) {
		case 0:
			id := rng.Uint64() | 1
			m := stagedMeta{mtime: int64(step), mode: 0o644, set: step%2 == 0}
			r := model[h]
			there := r != nil && !r.taken
			if got := s.add(h, id, m); got == there {
				t.Fatalf("step %d: add returned %v, one there to take %v", step, got, there)
			}
			if !there {
				model[h] = &rec{id: id, meta: m}
				live++
			}
		case 1:
			id, m, ok := s.take(h)
			r := model[h]
			want := r != nil && !r.taken
			if ok != want || (ok && (id != r.id || m != r.meta)) {
				t.Fatalf("step %d: take = %d %+v %v, want %+v", step, id, m, ok, r)
			}
			if ok {
				r.taken = true
				if live--; live == 0 {
					clear(model) // the last taken empties the set
				}
			}
		case 2:
			r := model[h]
			if got := s.has(h); got != (r != nil && !r.taken) {
				t.Fatalf("step %d: has %v against %+v", step, got, r)
			}
		}
		if s.len() != live {
			t.Fatalf("step %d: len %d, want %d", step, s.len(), live)
		}
	}
	left := map[uint64]bool{}
	s.each(func(id uint64) { left[id] = true })
	for _, r := range model {
		if left[r.id] == r.taken {
			t.Fatalf("each lists %d: %v, taken %v", r.id, left[r.id], r.taken)
		}
	}
	if len(left) != live {
		t.Fatalf("each listed %d, want %d", len(left), live)
	}
}

// TestPrestagedSetMemory: 100,000 prestaged files hold at most 70 bytes
// each (a map[index.Hash]prestagedFile held ~100).
func TestPrestagedSetMemory(t *testing.T) {
	const n = 100000
	hashes := make([]index.Hash, n)
	for i := range hashes {
		hashes[i] = index.Sum([]byte{byte(i), byte(i >> 8), byte(i >> 16)})
	}
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	var s prestagedSet
	for i, h := range hashes {
		s.add(h, uint64(i+1), stagedMeta{})
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	per := float64(int64(after.HeapAlloc)-int64(before.HeapAlloc)) / n
	if s.len() != n {
		t.Fatalf("len %d", s.len())
	}
	runtime.KeepAlive(hashes)
	if per > 70 {
		t.Fatalf("%.0f bytes per prestaged file, want at most 70", per)
	}
	t.Logf("%.1f bytes per prestaged file", per)
}
