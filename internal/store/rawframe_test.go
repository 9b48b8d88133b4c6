package store

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/klauspost/compress/zstd"

	"pbxsync/internal/astgen"
)

// TestIncompressibleStoredRaw: audio (16-bit PCM speech, whose first
// 128 KiB do not compress) is stored as a frame of raw blocks — no bigger
// than the content plus the block headers, where the compressor made it
// ~0.9 of it before — and reads back, travels to another store through
// PutCompressed, and decodes with any zstd decoder; a dialplan is still
// compressed, and so is content no larger than the sample.
func TestIncompressibleStoredRaw(t *testing.T) {
	ctx := context.Background()
	g := astgen.New(5)
	cases := []struct {
		name string
		data []byte
		raw  bool
	}{
		{"audio", g.WAV(3<<20 + 12345), true},
		{"audio, whole blocks", g.WAV(2 * rawBlock), true},
		{"audio, a sample over the sample", g.WAV(sampleSize + 2), true},
		{"audio, the sample's size", g.WAV(sampleSize), false},
		{"random", randBytes(3, 1<<20), true},
		{"dialplan", g.Dialplan(10000), false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s := newTestStore(t)
			h := put(t, s, c.data)
			rc, n, err := s.OpenCompressed(h)
			if err != nil {
				t.Fatal(err)
			}
			frame, err := io.ReadAll(rc)
			rc.Close()
			if err != nil || int64(len(frame)) != n {
				t.Fatalf("read frame: %d of %d bytes, %v", len(frame), n, err)
			}
			blocks := (len(c.data) + rawBlock - 1) / rawBlock
			rawSize := len(rawFrameHeader) + 3*blocks + len(c.data)
			if c.raw && len(frame) != rawSize {
				t.Fatalf("%d bytes stored as a %d-byte frame, want a raw frame of %d", len(c.data), len(frame), rawSize)
			}
			if !c.raw && len(frame) >= len(c.data) && len(c.data) > sampleSize {
				t.Fatalf("%d bytes stored as %d: not compressed", len(c.data), len(frame))
			}
			if got := readBlob(t, s, h); !bytes.Equal(got, c.data) {
				t.Fatal("content read back differs")
			}
			dec, err := zstd.NewReader(nil)
			if err != nil {
				t.Fatal(err)
			}
			defer dec.Close()
			if got, err := dec.DecodeAll(frame, nil); err != nil || !bytes.Equal(got, c.data) {
				t.Fatalf("a plain zstd decoder: %v (equal %v)", err, bytes.Equal(got, c.data))
			}
			if zstdCLI, err := exec.LookPath("zstd"); err == nil {
				f := filepath.Join(t.TempDir(), "blob.zst")
				if err := os.WriteFile(f, frame, 0o600); err != nil {
					t.Fatal(err)
				}
				out, err := exec.Command(zstdCLI, "-d", "-c", "-q", f).Output()
				if err != nil || !bytes.Equal(out, c.data) {
					t.Fatalf("zstd -d: %v (equal %v)", err, bytes.Equal(out, c.data))
				}
			}
			other := newTestStore(t)
			if _, err := other.PutCompressed(ctx, bytes.NewReader(frame), h, int64(len(c.data))); err != nil {
				t.Fatalf("another store refuses the frame: %v", err)
			}
			if got := readBlob(t, other, h); !bytes.Equal(got, c.data) {
				t.Fatal("content read back from the other store differs")
			}
		})
	}
}

// TestPutCompressedTee: the copy receives the decoded content of a frame
// that is stored; a frame of other content is refused as corrupt (the
// copy must then be discarded), and a copy that cannot be written fails
// the put without calling the frame corrupt.
func TestPutCompressedTee(t *testing.T) {
	ctx := context.Background()
	src := newTestStore(t)
	data := astgen.New(9).Dialplan(3000)
	h := put(t, src, data)
	rc, _, err := src.OpenCompressed(h)
	if err != nil {
		t.Fatal(err)
	}
	frame, _ := io.ReadAll(rc)
	rc.Close()

	dst := newTestStore(t)
	var copyBuf bytes.Buffer
	if _, err := dst.PutCompressedTee(ctx, bytes.NewReader(frame), h, int64(len(data)), &copyBuf); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(copyBuf.Bytes(), data) || !dst.Has(h) {
		t.Fatal("the copy differs from the content, or the content was not stored")
	}
	other := newTestStore(t)
	wrong := h
	wrong[0] ^= 1
	if _, err := other.PutCompressedTee(ctx, bytes.NewReader(frame), wrong, int64(len(data)), io.Discard); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("a frame of other content: %v, want ErrCorrupt", err)
	}
	full := errors.New("no space left")
	if _, err := other.PutCompressedTee(ctx, bytes.NewReader(frame), h, int64(len(data)), failingWriter{full}); !errors.Is(err, full) || errors.Is(err, ErrCorrupt) {
		t.Fatalf("a copy that cannot be written: %v, want its error and not ErrCorrupt", err)
	}
	if other.Has(h) {
		t.Fatal("content stored though its copy failed")
	}
}

type failingWriter struct{ err error }

func (f failingWriter) Write([]byte) (int, error) { return 0, f.err }
