package backup

import (
	"bytes"
	"io"
	"testing"
)

// FuzzRead feeds arbitrary bytes to the archive reader: it must not panic
// or read without bound, and what it accepts must be a valid manifest
// whose files it delivered in full.
func FuzzRead(f *testing.F) {
	b, _, _ := writeTest(f)
	f.Add(b)
	f.Add(b[:len(b)/2])
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, data []byte) {
		var read int64
		m, err := Read(bytes.NewReader(data), nil, func(it Item, r io.Reader) error {
			n, err := io.Copy(io.Discard, r)
			read += n
			return err
		})
		if err != nil {
			return
		}
		if verr := m.validate(); verr != nil {
			t.Fatalf("accepted an invalid manifest: %v", verr)
		}
		if _, size := m.Files(); size != read {
			t.Fatalf("accepted: files of %d bytes, delivered %d", size, read)
		}
	})
}
