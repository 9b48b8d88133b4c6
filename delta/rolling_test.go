package delta

import (
	"math/rand/v2"
	"testing"
)

// TestRolling: sliding the window equals summing it afresh.
func TestRolling(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 1))
	data := make([]byte, 5000)
	for i := range data {
		data[i] = byte(r.Uint32())
	}
	for _, n := range []int{1, 7, 8, 9, 16, 100, 700} {
		slow := func(p []byte) uint64 {
			var h uint64
			for _, b := range p {
				h = h*rollMul + uint64(b)
			}
			return h
		}
		pow := rollPow(n)
		h := rollSum(data[:n])
		for i := 0; i+n < len(data); i++ {
			if want := slow(data[i : i+n]); h != want {
				t.Fatalf("n=%d at %d: rolled %x, summed %x", n, i, h, want)
			}
			h = rollOut(h, pow, data[i], data[i+n])
		}
	}
}

func BenchmarkRollSum(b *testing.B) {
	p := make([]byte, 4096)
	b.SetBytes(int64(len(p)))
	for b.Loop() {
		rollSum(p)
	}
}

func TestRollPowers(t *testing.T) {
	got := []uint64{m2, m3, m4, m5, m6, m7, m8}
	p := uint64(rollMul)
	for i, g := range got {
		p *= rollMul
		if g != p {
			t.Fatalf("m%d = %#x, want %#x", i+2, g, p)
		}
	}
}
