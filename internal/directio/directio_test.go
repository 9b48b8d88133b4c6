package directio

import (
	"bytes"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"
)

var sizes = []int{0, 1, Align - 1, Align, Align + 1, BufSize - 1, BufSize, BufSize + 1, 3*BufSize + 12345}

func content(n int) []byte {
	var seed [32]byte
	seed[0] = byte(n)
	b := make([]byte, n)
	rand.NewChaCha8(seed).Read(b)
	return b
}

// writeFile writes data to a new file through a Writer, in pieces of
// random sizes.
func writeFile(t *testing.T, path string, data []byte, hint int64) {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	w := NewWriter(f, hint)
	rng := rand.New(rand.NewPCG(7, uint64(len(data))))
	for p := data; len(p) > 0; {
		k := min(len(p), 1+rng.IntN(300<<10))
		if n, err := w.Write(p[:k]); err != nil || n != k {
			t.Fatalf("write: %d of %d, %v", n, k, err)
		}
		p = p[k:]
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
}

// TestWriterReader: every size, with the buffer sized for it, for unknown
// size and too small for it, reads back the same through a file read,
// Reader.Read and Reader.WriteTo.
func TestWriterReader(t *testing.T) {
	dir := t.TempDir()
	for _, n := range sizes {
		for _, hint := range []int64{int64(n), 0, Align} {
			data := content(n)
			path := filepath.Join(dir, "f")
			writeFile(t, path, data, hint)
			if got, err := os.ReadFile(path); err != nil || !bytes.Equal(got, data) {
				t.Fatalf("size %d, hint %d: the file holds %d bytes, want %d (%v)", n, hint, len(got), n, err)
			}
			for _, viaWriteTo := range []bool{false, true} {
				f, err := os.Open(path)
				if err != nil {
					t.Fatal(err)
				}
				r := NewReader(f, hint)
				var got bytes.Buffer
				if viaWriteTo {
					_, err = r.WriteTo(&got)
				} else {
					_, err = io.CopyBuffer(&got, struct{ io.Reader }{r}, make([]byte, 7000))
				}
				if cerr := r.Close(); err == nil {
					err = cerr
				}
				if err != nil || !bytes.Equal(got.Bytes(), data) {
					t.Fatalf("size %d, hint %d, WriteTo %v: read %d bytes, want %d (%v)", n, hint, viaWriteTo, got.Len(), n, err)
				}
			}
		}
	}
}
