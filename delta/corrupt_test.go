package delta

import (
	"bytes"
	"context"
	"errors"
	"io"
	"math/rand/v2"
	"testing"

	"pbxsync/internal/astgen"
	"pbxsync/internal/index"
)

func isSentinel(err error) bool {
	return errors.Is(err, ErrCorrupt) || errors.Is(err, ErrBaseMismatch) || errors.Is(err, ErrTooLarge) || errors.Is(err, ErrUnsupported)
}

func testPair() (base, target []byte) {
	g := astgen.New(7)
	base = g.Dialplan(300)
	return base, g.InsertLines(g.ChangeLine(base), 20)
}

// TestCorruptDeltaRefused: every flipped byte and every truncation of a
// delta of every kind is refused with ErrCorrupt (or ErrUnsupported for a
// flipped version/kind/flag byte), unless the result still comes out
// exactly right.
func TestCorruptDeltaRefused(t *testing.T) {
	t.Parallel()
	base, target := testPair()
	r := rand.New(rand.NewPCG(8, 9))
	for _, k := range allKinds {
		d, _ := encodeKind(t, k, base, target, nil)
		positions := r.Perm(len(d))[:min(len(d), 300)]
		for _, p := range positions {
			bad := append([]byte{}, d...)
			bad[p] ^= byte(1 + r.IntN(255))
			out, _, err := patchBytes(base, bad, nil)
			if err == nil {
				if !bytes.Equal(out, target) {
					t.Fatalf("%v: flip at %d accepted with a wrong result", k, p)
				}
				continue
			}
			if !errors.Is(err, ErrCorrupt) && !errors.Is(err, ErrUnsupported) && !errors.Is(err, ErrTooLarge) {
				t.Fatalf("%v: flip at %d: %v (not ErrCorrupt)", k, p, err)
			}
		}
		for _, n := range append(r.Perm(len(d))[:min(len(d), 200)], len(d)-1, 0) {
			_, _, err := patchBytes(base, d[:n], nil)
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("%v: truncated to %d of %d: %v", k, n, len(d), err)
			}
		}
		// Extra bytes after the delta are not part of it: Patch stops at
		// the payload's end.
		rd := bytes.NewReader(append(append([]byte{}, d...), "NEXT"...))
		var out bytes.Buffer
		bf := BytesFile(base)
		if _, err := Patch(context.Background(), &out, &bf, rd, nil); err != nil || !bytes.Equal(out.Bytes(), target) {
			t.Fatalf("%v: delta followed by more data: %v", k, err)
		}
		if rest, _ := io.ReadAll(rd); string(rest) != "NEXT" {
			t.Fatalf("%v: Patch consumed past the delta, left %q", k, rest)
		}
	}
}

// TestWrongBaseRefused: a delta applied to another base is refused before
// anything is written when the base's size or hash tells, and by the result
// hash otherwise.
func TestWrongBaseRefused(t *testing.T) {
	base, target := testPair()
	other := append([]byte{}, base...)
	other[len(other)/2] ^= 0x20 // same size, other content
	for _, k := range []Kind{KindDictZstd, KindBlocks, KindBlocksZstd} {
		d, _ := encodeKind(t, k, base, target, nil)
		patch := func(bf *File, opts *PatchOptions) (int, error) {
			var out bytes.Buffer
			_, err := Patch(context.Background(), &out, bf, bytes.NewReader(d), opts)
			return out.Len(), err
		}
		// Hash given: refused up front.
		ob := BytesFile(other)
		ob.Hash = index.Sum(other)
		if n, err := patch(&ob, nil); !errors.Is(err, ErrBaseMismatch) || n != 0 {
			t.Fatalf("%v: other base with its hash: %v, %d bytes written", k, err, n)
		}
		// VerifyBase: the content is hashed and refused up front.
		ob.Hash = index.Hash{}
		if n, err := patch(&ob, &PatchOptions{VerifyBase: true}); !errors.Is(err, ErrBaseMismatch) || n != 0 {
			t.Fatalf("%v: other base, VerifyBase: %v, %d bytes written", k, err, n)
		}
		// No hash: caught by the result hash.
		if _, err := patch(&ob, nil); !errors.Is(err, ErrCorrupt) {
			t.Fatalf("%v: other base without hash: %v", k, err)
		}
		// Other size, no base at all.
		sb := BytesFile(base[:len(base)-1])
		if n, err := patch(&sb, nil); !errors.Is(err, ErrBaseMismatch) || n != 0 {
			t.Fatalf("%v: shorter base: %v", k, err)
		}
		if n, err := patch(nil, nil); !errors.Is(err, ErrBaseMismatch) || n != 0 {
			t.Fatalf("%v: no base: %v", k, err)
		}
		// The right base, with its hash and verified.
		gb := BytesFile(base)
		gb.Hash = index.Sum(base)
		if _, err := patch(&gb, &PatchOptions{VerifyBase: true}); err != nil {
			t.Fatalf("%v: right base: %v", k, err)
		}
	}
}

// TestLimits: results over MaxSize and dict bases over MaxDictBase are
// refused before any output.
func TestLimits(t *testing.T) {
	t.Parallel()
	base, target := testPair()
	for _, k := range allKinds {
		d, _ := encodeKind(t, k, base, target, nil)
		out, _, err := patchBytes(base, d, &PatchOptions{MaxSize: int64(len(target) - 1)})
		if !errors.Is(err, ErrTooLarge) || len(out) != 0 {
			t.Fatalf("%v: MaxSize: %v, %d bytes written", k, err, len(out))
		}
	}
	d, _ := encodeKind(t, KindDictZstd, base, target, nil)
	out, _, err := patchBytes(base, d, &PatchOptions{MaxDictBase: int64(len(base) - 1)})
	if !errors.Is(err, ErrTooLarge) || len(out) != 0 {
		t.Fatalf("MaxDictBase: %v", err)
	}
}

// TestCorruptSignatureRefused: flipped bytes and truncations of a
// signature are refused.
func TestCorruptSignatureRefused(t *testing.T) {
	base, _ := testPair()
	var sig bytes.Buffer
	if _, err := WriteSignature(context.Background(), &sig, BytesFile(base), &SignatureOptions{BlockSize: 256}); err != nil {
		t.Fatal(err)
	}
	s := sig.Bytes()
	got, err := ReadSignature(bytes.NewReader(s), nil)
	if err != nil || got.BaseHash != index.Sum(base) || got.BaseSize != int64(len(base)) || got.BlockSize != 256 {
		t.Fatalf("good signature: %v %+v", err, got)
	}
	r := rand.New(rand.NewPCG(10, 11))
	for _, p := range r.Perm(len(s))[:300] {
		bad := append([]byte{}, s...)
		bad[p] ^= byte(1 + r.IntN(255))
		if _, err := ReadSignature(bytes.NewReader(bad), nil); !isSentinel(err) {
			t.Fatalf("flip at %d: %v", p, err)
		}
	}
	for _, n := range append(r.Perm(len(s))[:200], len(s)-1, 0) {
		if _, err := ReadSignature(bytes.NewReader(s[:n]), nil); !errors.Is(err, ErrCorrupt) {
			t.Fatalf("truncated to %d: %v", n, err)
		}
	}
	if _, err := ReadSignature(bytes.NewReader(s), &SignatureLimits{MaxBlocks: 3}); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("MaxBlocks: %v", err)
	}
}

// TestWrongHashesGiven: the encoders trust the hashes the caller gives
// (and skip hashing); if they are wrong, for example because a file changed
// meanwhile, Patch refuses the delta.
func TestWrongHashesGiven(t *testing.T) {
	base, target := testPair()
	wrong := index.Sum([]byte("something else"))
	bf := BytesFile(base)
	bf.Hash = wrong
	var d bytes.Buffer
	if _, err := Encode(context.Background(), &d, &bf, BytesFile(target), nil); err != nil {
		t.Fatal(err)
	}
	rb := BytesFile(base)
	rb.Hash = index.Sum(base)
	if _, err := Patch(context.Background(), io.Discard, &rb, bytes.NewReader(d.Bytes()), nil); !errors.Is(err, ErrBaseMismatch) {
		t.Fatalf("wrong base hash given to Encode: Patch says %v", err)
	}
	tf := BytesFile(target)
	tf.Hash = wrong
	for _, k := range allKinds {
		d.Reset()
		if _, err := EncodeKind(context.Background(), &d, k, &rb, tf, nil); err != nil {
			t.Fatal(err)
		}
		if _, err := Patch(context.Background(), io.Discard, &rb, bytes.NewReader(d.Bytes()), nil); !errors.Is(err, ErrCorrupt) {
			t.Fatalf("%v: wrong target hash given to Encode: Patch says %v", k, err)
		}
	}
}

// TestCancel: a cancelled context stops the long operations.
func TestCancel(t *testing.T) {
	base, target := testPair()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	bf := BytesFile(base)
	if _, err := Encode(ctx, io.Discard, &bf, BytesFile(target), nil); !errors.Is(err, context.Canceled) {
		t.Fatalf("Encode: %v", err)
	}
	if _, err := WriteSignature(ctx, io.Discard, bf, nil); !errors.Is(err, context.Canceled) {
		t.Fatalf("WriteSignature: %v", err)
	}
	d, _ := encodeKind(t, KindBlocks, base, target, nil)
	if _, err := Patch(ctx, io.Discard, &bf, bytes.NewReader(d), nil); !errors.Is(err, context.Canceled) {
		t.Fatalf("Patch: %v", err)
	}
}

// TestReadHeaderThenApply: the two-step receiver path picks the base from
// the header.
func TestReadHeaderThenApply(t *testing.T) {
	base, target := testPair()
	d, _ := encodeKind(t, 0, base, target, nil)
	r := bytes.NewReader(d)
	h, err := ReadHeader(r)
	if err != nil {
		t.Fatal(err)
	}
	store := map[index.Hash][]byte{index.Sum(base): base}
	b, ok := store[h.BaseHash]
	if !ok || h.ResultHash != index.Sum(target) || h.ResultSize != int64(len(target)) {
		t.Fatalf("header %+v does not name the base and target", h)
	}
	bf := BytesFile(b)
	bf.Hash = h.BaseHash
	var out bytes.Buffer
	if err := Apply(context.Background(), &out, h, &bf, r, nil); err != nil || !bytes.Equal(out.Bytes(), target) {
		t.Fatalf("Apply: %v", err)
	}
	h.PayloadSize = maxPayload(h.ResultSize) + 1
	if err := Apply(context.Background(), &out, h, &bf, r, nil); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("Apply with a forged header: %v", err)
	}
}
