package delta

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"pbxsync/internal/index"
)

// TestFilesOnDisk runs the sender and receiver sides over *os.File, with
// hashes from the "index", staging the result and renaming it on success.
func TestFilesOnDisk(t *testing.T) {
	dir := t.TempDir()
	base, target := testPair()
	bp, tp := filepath.Join(dir, "base"), filepath.Join(dir, "target")
	if err := os.WriteFile(bp, base, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(tp, target, 0o644); err != nil {
		t.Fatal(err)
	}
	open := func(p string) (File, *os.File) {
		f, err := os.Open(p)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { f.Close() })
		df, err := OpenFile(f)
		if err != nil {
			t.Fatal(err)
		}
		return df, f
	}
	bf, _ := open(bp)
	tf, _ := open(tp)
	bf.Hash, tf.Hash = index.Sum(base), index.Sum(target)
	var d bytes.Buffer
	res, err := Encode(context.Background(), &d, &bf, tf, &Options{TempDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	if res.TargetHash != tf.Hash || res.BaseHash != bf.Hash || res.Size != int64(d.Len()) || len(res.Tried) == 0 {
		t.Fatalf("result %+v", res)
	}
	for _, a := range res.Tried {
		if s := a.String(); !strings.HasPrefix(s, a.Kind.String()) {
			t.Fatalf("attempt %q", s)
		}
	}
	staging, err := os.CreateTemp(dir, ".stage-*")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Patch(context.Background(), staging, &bf, &d, nil); err != nil {
		t.Fatal(err)
	}
	staging.Close()
	if err := os.Rename(staging.Name(), filepath.Join(dir, "result")); err != nil {
		t.Fatal(err)
	}
	got, _ := os.ReadFile(filepath.Join(dir, "result"))
	if !bytes.Equal(got, target) {
		t.Fatal("result differs")
	}
}

func TestKindNames(t *testing.T) {
	want := []string{"raw", "zstd", "dict-zstd", "blocks", "blocks-zstd"}
	for i, k := range allKinds {
		if k.String() != want[i] || k.NeedsBase() != (i >= 2) {
			t.Fatalf("%d: %q needs base %v", k, k, k.NeedsBase())
		}
	}
	if Kind(9).String() != "kind(9)" || Kind(9).NeedsBase() {
		t.Fatal("unknown kind")
	}
}

func TestEncodeKindErrors(t *testing.T) {
	if _, err := EncodeKind(context.Background(), io.Discard, KindBlocks, nil, BytesFile([]byte("x")), nil); err == nil {
		t.Fatal("blocks without a base accepted")
	}
	bf := BytesFile([]byte("x"))
	if _, err := EncodeKind(context.Background(), io.Discard, Kind(9), &bf, BytesFile([]byte("x")), nil); !errors.Is(err, ErrUnsupported) {
		t.Fatalf("kind 9: %v", err)
	}
	if _, err := Encode(context.Background(), io.Discard, &bf, BytesFile([]byte("x")), &Options{BlockSize: 3}); err == nil {
		t.Fatal("block size 3 accepted")
	}
	if _, err := WriteSignature(context.Background(), io.Discard, bf, &SignatureOptions{StrongLen: 17}); err == nil {
		t.Fatal("strong length 17 accepted")
	}
}

// TestNoBase: without a base, Encode sends zstd or raw, and Patch needs no
// base for them.
func TestNoBase(t *testing.T) {
	_, target := testPair()
	var d bytes.Buffer
	res, err := Encode(context.Background(), &d, nil, BytesFile(target), nil)
	if err != nil || res.Kind != KindZstd {
		t.Fatalf("%v %v", res.Kind, err)
	}
	var out bytes.Buffer
	if _, err := Patch(context.Background(), &out, nil, &d, nil); err != nil || !bytes.Equal(out.Bytes(), target) {
		t.Fatalf("patch: %v", err)
	}
	d.Reset()
	if res, _ := Encode(context.Background(), &d, nil, BytesFile(randomBytes(3000)), nil); res.Kind != KindRaw {
		t.Fatalf("random bytes: %v (%v)", res.Kind, res.Tried)
	}
}

func randomBytes(n int) []byte {
	b := make([]byte, n)
	x := uint64(88172645463325252)
	for i := range b {
		x ^= x << 13
		x ^= x >> 7
		x ^= x << 17
		b[i] = byte(x)
	}
	return b
}

// TestUnrelatedCutShort: a large target that shares nothing with its base
// ends the block match early and goes out as zstd (or raw).
func TestUnrelatedCutShort(t *testing.T) {
	t.Parallel()
	base, target := randomBytes(20<<20), make([]byte, 20<<20)
	for i := range target {
		target[i] = byte(i % 251 * (i / 4096 % 7))
	}
	var d bytes.Buffer
	bf := BytesFile(base)
	res, err := Encode(context.Background(), &d, &bf, BytesFile(target), nil)
	if err != nil {
		t.Fatal(err)
	}
	if res.Kind != KindZstd || len(res.Tried) < 2 || !strings.Contains(res.Tried[0].Note, "base matched") {
		t.Fatalf("%v, tried %v", res.Kind, res.Tried)
	}
	var out bytes.Buffer
	if _, err := Patch(context.Background(), &out, &bf, &d, nil); err != nil || !bytes.Equal(out.Bytes(), target) {
		t.Fatalf("patch: %v", err)
	}
}
