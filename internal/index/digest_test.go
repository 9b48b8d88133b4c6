package index

import (
	"fmt"
	"math/rand/v2"
	"testing"
)

// TestSetDigestIncremental: a digest kept up to date one change at a time
// equals the digest of the resulting index computed from scratch, after
// every step of a random sequence of adds, changes and removals.
func TestSetDigestIncremental(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	x := New(0)
	var d SetDigest
	if d.Hash() != x.Digest() || !d.Hash().IsZero() {
		t.Fatal("the empty set's digest is not zero")
	}
	for step := range 2000 {
		p := fmt.Sprintf("d%d/f%d", rng.IntN(5), rng.IntN(40))
		old, had := x.Get(p)
		var it Item
		has := rng.IntN(4) != 0
		if has {
			it = Item{Path: p, Kind: KindFile, Size: int64(rng.IntN(3)), Mode: 0o644, MTime: int64(rng.IntN(3)), Hash: Sum([]byte{byte(rng.IntN(3))})}
			x.Set(it)
		} else {
			x.Delete(p)
		}
		d.Replace(old, had, it, has)
		if d.Hash() != x.Digest() {
			t.Fatalf("step %d: incremental digest differs from the full one", step)
		}
	}
}

// TestDigestCoversEveryField: each field the digest covers changes it, and
// so does moving contents between paths (a sum of unbound hashes would not
// see that); the version vector and the order of insertion do not.
func TestDigestCoversEveryField(t *testing.T) {
	a := Item{Path: "a", Kind: KindFile, Size: 1, Mode: 0o644, MTime: 5, Hash: Sum([]byte("1"))}
	b := Item{Path: "b", Kind: KindFile, Size: 1, Mode: 0o644, MTime: 5, Hash: Sum([]byte("2"))}
	base := Of(a, b).Digest()
	variants := map[string]func(*Item){
		"path":  func(it *Item) { it.Path = "c" },
		"kind":  func(it *Item) { it.Kind = KindDir },
		"mode":  func(it *Item) { it.Mode = 0o600 },
		"size":  func(it *Item) { it.Size = 2 },
		"mtime": func(it *Item) { it.MTime = 6 },
		"hash":  func(it *Item) { it.Hash = Sum([]byte("3")) },
	}
	for name, change := range variants {
		c := a
		change(&c)
		if Of(c, b).Digest() == base {
			t.Errorf("a %s change does not change the digest", name)
		}
	}
	sa, sb := a, b
	sa.Hash, sb.Hash = b.Hash, a.Hash
	if Of(sa, sb).Digest() == base {
		t.Error("swapping the contents of two paths does not change the digest")
	}
	v := a
	v.Version = Vector{}.Bump("n1")
	if Of(v, b).Digest() != base {
		t.Error("the version vector changes the digest")
	}
	var d1, d2 SetDigest
	d1.Add(a)
	d1.Add(b)
	d2.Add(b)
	d2.Add(a)
	if d1 != d2 || d1.Hash() != base {
		t.Error("the digest depends on the order of insertion")
	}
}

// BenchmarkDigest: the digest of a 100,000-item index from scratch against
// keeping it up to date for a one-file change.
func BenchmarkDigest(b *testing.B) {
	x := New(100000)
	for i := range 100000 {
		p := fmt.Sprintf("d%03d/f%04d.conf", i/1000, i%1000)
		x.Set(Item{Path: p, Kind: KindFile, Size: 100, Mode: 0o644, MTime: int64(i), Hash: Sum([]byte(p))})
	}
	b.Run("full", func(b *testing.B) {
		for b.Loop() {
			_ = x.Digest()
		}
	})
	b.Run("one-change", func(b *testing.B) {
		d := DigestOf(x)
		old, _ := x.Get("d050/f0500.conf")
		nw := old
		nw.MTime++
		for b.Loop() {
			d.Replace(old, true, nw, true)
			old, nw = nw, old
		}
	})
}
