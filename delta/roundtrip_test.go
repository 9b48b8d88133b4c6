package delta

import (
	"bytes"
	"math/rand/v2"
	"testing"

	"pbxsync/internal/index"
)

// TestRoundTripProperty: for random bases and random edit scripts,
// Patch(base, delta(base, new)) == new for every encoding, for Encode's
// choice, and for the signature path, at several block sizes.
func TestRoundTripProperty(t *testing.T) {
	t.Parallel()
	iters := 60
	if testing.Short() {
		iters = 20
	}
	r := rand.New(rand.NewPCG(1, 2))
	blockSizes := []int{0, 16, 37, 64, 700, 4096}
	for i := range iters {
		base := randomBase(r)
		target := editScript(r, base)
		opts := &Options{BlockSize: blockSizes[r.IntN(len(blockSizes))]}
		bf, tf := BytesFile(base), BytesFile(target)
		if i%2 == 1 { // hashes known, as the agent has them from its index
			bf.Hash, tf.Hash = index.Sum(base), index.Sum(target)
		}
		for _, k := range append([]Kind{0}, allKinds...) {
			d, res := encodeFiles(t, k, &bf, tf, opts)
			out, h, err := patchBytes(base, d, nil)
			if err != nil {
				t.Fatalf("iter %d kind %v (%v, base %d, target %d): %v", i, k, res.Kind, len(base), len(target), err)
			}
			if !bytes.Equal(out, target) {
				t.Fatalf("iter %d kind %v: result differs", i, k)
			}
			if h.Kind != res.Kind || (k != 0 && h.Kind != k) {
				t.Fatalf("iter %d: header kind %v, result kind %v, asked %v", i, h.Kind, res.Kind, k)
			}
			if k == 0 {
				for _, a := range res.Tried {
					if a.Size >= 0 && a.Size < res.Size {
						t.Fatalf("iter %d: chose %v (%d bytes) over smaller %v", i, res.Kind, res.Size, a)
					}
				}
			}
		}
		bs := []int{0, 16, 100, 512}[r.IntN(4)]
		d := signatureDelta(t, base, target, bs)
		out, _, err := patchBytes(base, d, nil)
		if err != nil || !bytes.Equal(out, target) {
			t.Fatalf("iter %d signature path (block %d): err %v, equal %v", i, bs, err, bytes.Equal(out, target))
		}
	}
}

// TestRoundTripLarger covers buffer refills and spilling to a temp file:
// targets larger than the 1 MiB match buffer and than SpoolMemory.
func TestRoundTripLarger(t *testing.T) {
	t.Parallel()
	r := rand.New(rand.NewPCG(3, 4))
	base := make([]byte, 3<<19)
	for i := range base {
		base[i] = byte(r.Uint32())
	}
	target := editScript(r, base)
	unrelated := make([]byte, 3<<19)
	for i := range unrelated {
		unrelated[i] = byte(r.Uint32() % 7)
	}
	opts := &Options{SpoolMemory: 64 << 10, TempDir: t.TempDir()}
	for _, tc := range []struct {
		name         string
		base, target []byte
	}{{"edited", base, target}, {"unrelated", base, unrelated}, {"empty-base", nil, target}} {
		for _, k := range []Kind{0, KindZstd, KindBlocks, KindBlocksZstd} {
			d, res := encodeKind(t, k, tc.base, tc.target, opts)
			out, _, err := patchBytes(tc.base, d, nil)
			if err != nil || !bytes.Equal(out, tc.target) {
				t.Fatalf("%s %v: err %v equal %v", tc.name, k, err, bytes.Equal(out, tc.target))
			}
			t.Logf("%s %v: %v %d bytes, tried %v", tc.name, k, res.Kind, res.Size, res.Tried)
		}
		d := signatureDelta(t, tc.base, tc.target, 0)
		if out, _, err := patchBytes(tc.base, d, nil); err != nil || !bytes.Equal(out, tc.target) {
			t.Fatalf("%s signature path: %v", tc.name, err)
		}
	}
}

// TestUnchangedIsTiny: an unchanged file costs a header and a copy op.
func TestUnchangedIsTiny(t *testing.T) {
	t.Parallel()
	r := rand.New(rand.NewPCG(5, 6))
	for _, n := range []int{1000, 100000, 3 << 20} {
		b := make([]byte, n)
		for i := range b {
			b[i] = byte(r.Uint32())
		}
		d, res := encodeKind(t, 0, b, b, nil)
		if len(d) > 100 {
			t.Errorf("unchanged %d bytes: delta of %d bytes (%v)", n, len(d), res.Tried)
		}
	}
}
