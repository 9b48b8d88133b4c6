package delta

import (
	"bytes"
	"context"
	"encoding/binary"
	"io"
	"testing"

	"github.com/zeebo/xxh3"

	"pbxsync/internal/astgen"

	"pbxsync/internal/index"
)

// The fuzz targets build a valid header (with its checksum) around the
// fuzzed payload, so that the fuzzer spends its time in the payload
// decoders rather than on the header checksum; with raw set the input is
// taken as a whole delta instead, header included.

const fuzzMaxSize = 1 << 20

// smallPair is a few-KB base and target: small seeds keep the fuzzer's
// input minimization quick.
func smallPair() (base, target []byte) {
	g := astgen.New(3)
	base = g.PJSIP(3)
	return base, g.InsertLines(g.ChangeLine(base), 4)
}

func fuzzSeeds(f *testing.F, k Kind) {
	base, target := smallPair()
	for _, tc := range []struct{ base, target []byte }{
		{base, target}, {base[:500], target[:900]}, {nil, []byte("x")}, {[]byte("abc"), nil},
	} {
		d, _ := encodeKind(f, k, tc.base, tc.target, &Options{BlockSize: 16})
		h, err := ReadHeader(bytes.NewReader(d))
		if err != nil {
			f.Fatal(err)
		}
		payload := d[len(d)-int(h.PayloadSize):]
		f.Add(tc.base, payload, uint32(h.ResultSize), false)
		f.Add(tc.base, d, uint32(0), true)
	}
}

func fuzzPatch(t *testing.T, k Kind, base, payload []byte, resultSize uint32, raw bool) {
	d := payload
	if !raw {
		h := Header{Kind: k, ResultSize: int64(resultSize % (fuzzMaxSize + 1)), PayloadSize: int64(len(payload))}
		if k == KindRaw {
			h.ResultSize = h.PayloadSize
		}
		if k.NeedsBase() {
			h.BaseSize, h.BaseHash = int64(len(base)), index.Sum(base)
		}
		d = append(h.appendTo(nil), payload...)
	}
	var out bytes.Buffer
	bf := BytesFile(base)
	h, err := Patch(context.Background(), &out, &bf, bytes.NewReader(d), &PatchOptions{MaxSize: fuzzMaxSize, MaxDictBase: fuzzMaxSize})
	if int64(out.Len()) > max(h.ResultSize, 0) {
		t.Fatalf("wrote %d bytes for a result of %d", out.Len(), h.ResultSize)
	}
	if err != nil {
		if !isSentinel(err) {
			t.Fatalf("error is none of the sentinels: %v", err)
		}
		return
	}
	if int64(out.Len()) != h.ResultSize || index.Sum(out.Bytes()) != h.ResultHash {
		t.Fatalf("accepted a result that does not match its header")
	}
}

func FuzzPatchRaw(f *testing.F) {
	fuzzSeeds(f, KindRaw)
	f.Fuzz(func(t *testing.T, base, payload []byte, n uint32, raw bool) {
		fuzzPatch(t, KindRaw, base, payload, n, raw)
	})
}

func FuzzPatchZstd(f *testing.F) {
	fuzzSeeds(f, KindZstd)
	f.Fuzz(func(t *testing.T, base, payload []byte, n uint32, raw bool) {
		fuzzPatch(t, KindZstd, base, payload, n, raw)
	})
}

func FuzzPatchDictZstd(f *testing.F) {
	fuzzSeeds(f, KindDictZstd)
	f.Fuzz(func(t *testing.T, base, payload []byte, n uint32, raw bool) {
		fuzzPatch(t, KindDictZstd, base, payload, n, raw)
	})
}

func FuzzPatchBlocks(f *testing.F) {
	fuzzSeeds(f, KindBlocks)
	f.Fuzz(func(t *testing.T, base, payload []byte, n uint32, raw bool) {
		fuzzPatch(t, KindBlocks, base, payload, n, raw)
	})
}

func FuzzPatchBlocksZstd(f *testing.F) {
	fuzzSeeds(f, KindBlocksZstd)
	f.Fuzz(func(t *testing.T, base, payload []byte, n uint32, raw bool) {
		fuzzPatch(t, KindBlocksZstd, base, payload, n, raw)
	})
}

// FuzzReadSignature decodes fuzzed signatures (checksums fixed up unless
// raw) and runs a Diff against each one it accepts.
func FuzzReadSignature(f *testing.F) {
	base, target := smallPair()
	for _, bs := range []int{16, 64, 200} {
		var sig bytes.Buffer
		if _, err := WriteSignature(context.Background(), &sig, BytesFile(base[:bs*3+5]), &SignatureOptions{BlockSize: bs}); err != nil {
			f.Fatal(err)
		}
		f.Add(sig.Bytes(), false, target)
		f.Add(sig.Bytes(), true, target[:100])
	}
	f.Fuzz(func(t *testing.T, s []byte, raw bool, target []byte) {
		if !raw {
			s = fixSignature(s)
		}
		sig, err := ReadSignature(bytes.NewReader(s), &SignatureLimits{MaxBlocks: 1 << 16})
		if err != nil {
			if !isSentinel(err) {
				t.Fatalf("error is none of the sentinels: %v", err)
			}
			return
		}
		if sig.BlockSize < MinBlockSize || sig.BlockSize > MaxBlockSize || int64(sig.Blocks()) != blockCount(sig.BaseSize, sig.BlockSize) {
			t.Fatalf("accepted an inconsistent signature: %+v", sig)
		}
		if _, err := Diff(context.Background(), io.Discard, sig, BytesFile(target), nil); err != nil {
			t.Fatalf("Diff against an accepted signature: %v", err)
		}
	})
}

// fixSignature recomputes the header and trailing checksums of s, where
// its header parses far enough to locate them.
func fixSignature(s []byte) []byte {
	s = append([]byte{}, s...)
	if len(s) < 7 {
		return s
	}
	p := 7
	for range 2 {
		_, n := binary.Uvarint(s[p:])
		if n <= 0 {
			return s
		}
		p += n
	}
	if len(s) < p+4 {
		return s
	}
	binary.LittleEndian.PutUint32(s[p:], uint32(xxh3.Hash(s[:p])))
	if len(s) >= p+4+8 {
		binary.LittleEndian.PutUint64(s[len(s)-8:], xxh3.Hash(s[:len(s)-8]))
	}
	return s
}
