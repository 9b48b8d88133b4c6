package store

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"testing"

	"github.com/klauspost/compress/zstd"

	"pbxsync/internal/astgen"
	"pbxsync/internal/index"
)

// rawFrame returns data as the store writes it when it does not compress.
func rawFrame(t testing.TB, data []byte) []byte {
	t.Helper()
	var b bytes.Buffer
	w := newRawFrameWriter(&b)
	if _, err := w.Write(data); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// blockHeader is a zstd block header of kind and size.
func blockHeader(last bool, kind, size int) []byte {
	v := uint32(size)<<3 | uint32(kind)<<1
	if last {
		v |= 1
	}
	var b [4]byte
	binary.LittleEndian.PutUint32(b[:], v)
	return b[:3]
}

// TestPutCompressedRawFrame: a raw frame (audio) is taken block by block
// without a decoder (none is made or pooled), stored and copied as it
// decodes; a raw frame that is damaged, cut short, followed by more bytes,
// holding another kind of block or of other content is refused as corrupt
// and leaves nothing stored.
func TestPutCompressedRawFrame(t *testing.T) {
	ctx := context.Background()
	data := astgen.New(3).WAV(3*rawBlock + 777)
	h := index.Sum(data)
	frame := rawFrame(t, data)

	s := newTestStore(t)
	var cp bytes.Buffer
	if n, err := s.PutCompressedTee(ctx, bytes.NewReader(frame), h, int64(len(data)), &cp); err != nil || n != int64(len(data)) {
		t.Fatalf("put: %d bytes, %v", n, err)
	}
	if len(s.decoders) != 0 {
		t.Fatalf("%d decoders pooled after a raw frame's put: it went through a decoder", len(s.decoders))
	}
	if !bytes.Equal(cp.Bytes(), data) || !bytes.Equal(readBlob(t, s, h), data) {
		t.Fatal("the copy or the stored content differs")
	}

	flipped := bytes.Clone(frame)
	flipped[len(flipped)/2] ^= 1
	compressedBlock := append(bytes.Clone(rawFrameHeader), blockHeader(true, 2, 10)...)
	compressedBlock = append(compressedBlock, make([]byte, 10)...)
	oversized := append(bytes.Clone(rawFrameHeader), blockHeader(true, 0, rawBlock+1)...)
	oversized = append(oversized, make([]byte, rawBlock+1)...)
	for name, bad := range map[string][]byte{
		"flipped content":      flipped,
		"cut in a block":       frame[:len(frame)-100],
		"cut after a block":    frame[:len(rawFrameHeader)+3+rawBlock],
		"bytes after it":       append(bytes.Clone(frame), 0),
		"a compressed block":   compressedBlock,
		"a block over 128 KiB": oversized,
	} {
		t.Run(name, func(t *testing.T) {
			d := newTestStore(t)
			_, err := d.PutCompressed(ctx, bytes.NewReader(bad), h, int64(len(data))+rawBlock)
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("got %v, want ErrCorrupt", err)
			}
			if d.Has(h) {
				t.Fatal("stored anyway")
			}
		})
	}
}

// FuzzCopyRawFrame: whatever copyRawFrame takes after a raw frame's header,
// a zstd decoder decodes to the same content; whatever it refuses is
// corrupt.
func FuzzCopyRawFrame(f *testing.F) {
	f.Add(rawFrame(f, []byte("hello"))[len(rawFrameHeader):])
	f.Add(rawFrame(f, bytes.Repeat([]byte("abc"), rawBlock))[len(rawFrameHeader):])
	f.Add(append(blockHeader(false, 0, 3), 'a', 'b', 'c'))
	f.Add(append(blockHeader(true, 1, 4), 'x'))
	f.Add([]byte{1})
	dec, err := zstd.NewReader(nil, zstd.WithDecoderConcurrency(1), zstd.WithDecoderMaxWindow(MaxWindow))
	if err != nil {
		f.Fatal(err)
	}
	defer dec.Close()
	f.Fuzz(func(t *testing.T, body []byte) {
		r := bytes.NewReader(body)
		var out bytes.Buffer
		n, err := copyRawFrame(&out, r, make([]byte, 4096))
		if n != int64(out.Len()) {
			t.Fatalf("reported %d bytes, wrote %d", n, out.Len())
		}
		if err != nil {
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("error does not wrap ErrCorrupt: %v", err)
			}
			return
		}
		used := len(body) - r.Len()
		got, err := dec.DecodeAll(append(bytes.Clone(rawFrameHeader), body[:used]...), nil)
		if err != nil || !bytes.Equal(got, out.Bytes()) {
			t.Fatalf("a decoder disagrees: %v (equal %v)", err, bytes.Equal(got, out.Bytes()))
		}
	})
}
