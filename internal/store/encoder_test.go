package store

import (
	"bytes"
	"io"
	"runtime"
	"testing"

	"github.com/klauspost/compress/zstd"

	"pbxsync/internal/astgen"
)

// TestEncoderMemoryBounded: a large compressible blob (a dialplan of
// 12 MiB) is compressed with a window of at most 1 MiB, and the
// encoder the store pools afterwards holds ~5.5 MiB, not the 19.5 MiB
// an 8 MiB window kept per encoder (three of them were most of a
// source's live heap during the scan of the mixed tree).
func TestEncoderMemoryBounded(t *testing.T) {
	s := newTestStore(t)
	data := astgen.New(7).Dialplan(100000)
	for len(data) < 12<<20 {
		data = append(data, data...)
	}
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	h := put(t, s, data)
	runtime.GC()
	runtime.ReadMemStats(&after)
	if len(s.encoders) == 0 {
		t.Fatal("the encoder was not pooled")
	}
	if grew := int64(after.HeapAlloc) - int64(before.HeapAlloc); grew > 10<<20 {
		t.Fatalf("the heap grew by %.1f MiB after one put (the pooled encoder): want at most 10 MiB", float64(grew)/(1<<20))
	}
	rc, _, err := s.OpenCompressed(h)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	var hdr zstd.Header
	head := make([]byte, zstd.HeaderMaxSize)
	n, _ := io.ReadFull(rc, head)
	if err := hdr.Decode(head[:n]); err != nil {
		t.Fatal(err)
	}
	if hdr.WindowSize > 1<<20 || hdr.WindowSize == 0 {
		t.Fatalf("frame window %d bytes, want at most 1 MiB", hdr.WindowSize)
	}
	if !bytes.Equal(readBlob(t, s, h), data) {
		t.Fatal("content reads back wrong")
	}
}
