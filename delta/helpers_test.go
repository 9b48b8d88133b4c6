package delta

import (
	"bytes"
	"context"
	"math/rand/v2"
	"testing"

	"pbxsync/internal/astgen"
)

// allKinds are the encodings, in format order.
var allKinds = []Kind{KindRaw, KindZstd, KindDictZstd, KindBlocks, KindBlocksZstd}

// randomBase returns a base of one of several shapes: random bytes, an
// Asterisk config, repetitive content, audio; sizes from 0 to ~300 KB.
func randomBase(r *rand.Rand) []byte {
	g := astgen.New(r.Uint64())
	switch r.IntN(7) {
	case 0:
		return g.Bytes(r.IntN(5000))
	case 1:
		return g.Dialplan(10 + r.IntN(800))
	case 2:
		return g.PJSIP(1 + r.IntN(200))
	case 3:
		return g.Voicemail(1 + r.IntN(2000))
	case 4: // repetitive: the same line many times, some zero runs
		line := []byte("exten => _X.,1,Dial(PJSIP/${EXTEN})\n")
		b := bytes.Repeat(line, r.IntN(3000))
		return append(b, make([]byte, r.IntN(20000))...)
	case 5:
		return g.WAV(r.IntN(200000))
	default:
		return g.Bytes(r.IntN(100))
	}
}

// editScript applies 1–8 random edits: insert (random or copied bytes),
// delete, replace, append, swap two regions (reorder blocks), duplicate.
func editScript(r *rand.Rand, b []byte) []byte {
	out := append([]byte{}, b...)
	for range 1 + r.IntN(8) {
		n := len(out)
		at := 0
		if n > 0 {
			at = r.IntN(n + 1)
		}
		span := func() int { return min(n-at, 1+r.IntN(1+min(n, 4096))) }
		switch r.IntN(7) {
		case 0: // insert random bytes
			ins := make([]byte, 1+r.IntN(300))
			for i := range ins {
				ins[i] = byte(r.Uint32())
			}
			out = append(out[:at], append(ins, out[at:]...)...)
		case 1: // insert a copy of other content
			if n > 0 {
				from := r.IntN(n)
				ins := append([]byte{}, out[from:from+min(n-from, 1+r.IntN(2000))]...)
				out = append(out[:at], append(ins, out[at:]...)...)
			}
		case 2: // delete
			if k := span(); k > 0 {
				out = append(out[:at], out[at+k:]...)
			}
		case 3: // replace
			for i := at; i < at+span(); i++ {
				out[i] ^= byte(1 + r.IntN(255))
			}
		case 4: // append
			app := make([]byte, 1+r.IntN(1000))
			for i := range app {
				app[i] = byte('a' + r.IntN(26))
			}
			out = append(out, app...)
		case 5: // reorder: swap two regions
			if n >= 4 {
				a := r.IntN(n / 2)
				al := 1 + r.IntN(n/2-a)
				c := n/2 + r.IntN(n-n/2)
				cl := 1 + r.IntN(n-c)
				x := append([]byte{}, out[:a]...)
				x = append(x, out[c:c+cl]...)
				x = append(x, out[a+al:c]...)
				x = append(x, out[a:a+al]...)
				out = append(x, out[c+cl:]...)
			}
		default: // truncate
			out = out[:at]
		}
	}
	return out
}

// encodeKind returns the delta of target against base in kind k
// (0: Encode's choice), with unknown hashes.
func encodeKind(t testing.TB, k Kind, base, target []byte, opts *Options) ([]byte, Result) {
	t.Helper()
	bf := BytesFile(base)
	return encodeFiles(t, k, &bf, BytesFile(target), opts)
}

// encodeFiles is encodeKind on Files (whose hashes may be set).
func encodeFiles(t testing.TB, k Kind, bf *File, tf File, opts *Options) ([]byte, Result) {
	t.Helper()
	var buf bytes.Buffer
	var res Result
	var err error
	if k == 0 {
		res, err = Encode(context.Background(), &buf, bf, tf, opts)
	} else {
		res, err = EncodeKind(context.Background(), &buf, k, bf, tf, opts)
	}
	if err != nil {
		t.Fatalf("encode %v: %v", k, err)
	}
	if res.Size != int64(buf.Len()) {
		t.Fatalf("encode %v: Result.Size %d, wrote %d", k, res.Size, buf.Len())
	}
	return buf.Bytes(), res
}

// patchBytes applies d to base.
func patchBytes(base, d []byte, opts *PatchOptions) ([]byte, Header, error) {
	var out bytes.Buffer
	bf := BytesFile(base)
	h, err := Patch(context.Background(), &out, &bf, bytes.NewReader(d), opts)
	return out.Bytes(), h, err
}

// signatureDelta runs the receiver-signature path: signature of base with
// block size bs (0 = default), decoded, then Diff.
func signatureDelta(t testing.TB, base, target []byte, bs int) []byte {
	t.Helper()
	var sig bytes.Buffer
	if _, err := WriteSignature(context.Background(), &sig, BytesFile(base), &SignatureOptions{BlockSize: bs}); err != nil {
		t.Fatal(err)
	}
	s, err := ReadSignature(bytes.NewReader(sig.Bytes()), nil)
	if err != nil {
		t.Fatal(err)
	}
	var d bytes.Buffer
	if _, err := Diff(context.Background(), &d, s, BytesFile(target), nil); err != nil {
		t.Fatal(err)
	}
	return d.Bytes()
}
