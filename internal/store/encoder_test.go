package store

import (
	"bytes"
	"io"
	"runtime"
	"sync"
	"testing"

	"github.com/klauspost/compress/zstd"

	"pbxsync/internal/astgen"
	"pbxsync/internal/index"
)

// TestEncoderMemoryBounded: large compressible blobs (dialplans of 6 MiB,
// four put at once, as a source's scan does) are compressed with a window
// of at most 1 MiB, and the four encoders the store pools afterwards hold
// ~4 MiB each: an 8 MiB window kept ~16 MiB of history per encoder, and
// judging the sample with a put's own encoder gave each a second set of
// tables (together most of a source's live heap during the mixed tree's
// scan).
func TestEncoderMemoryBounded(t *testing.T) {
	const puts = 4
	s := newTestStore(t)
	var data [puts][]byte
	for i := range data {
		data[i] = astgen.New(uint64(7 + i)).Dialplan(50000)
		for len(data[i]) < 6<<20 {
			data[i] = append(data[i], data[i]...)
		}
	}
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	var hs [puts]index.Hash
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range data {
		wg.Go(func() {
			<-start
			hs[i] = put(t, s, data[i])
		})
	}
	close(start)
	wg.Wait()
	runtime.GC()
	runtime.ReadMemStats(&after)
	if len(s.encoders) == 0 {
		t.Fatal("no encoder was pooled")
	}
	if grew := int64(after.HeapAlloc) - int64(before.HeapAlloc); grew > 5<<20*int64(len(s.encoders)) {
		t.Fatalf("the heap grew by %.1f MiB after the puts (%d pooled encoders): want at most 5 MiB each", float64(grew)/(1<<20), len(s.encoders))
	}
	for i, h := range hs {
		rc, _, err := s.OpenCompressed(h)
		if err != nil {
			t.Fatal(err)
		}
		var hdr zstd.Header
		head := make([]byte, zstd.HeaderMaxSize)
		n, _ := io.ReadFull(rc, head)
		rc.Close()
		if err := hdr.Decode(head[:n]); err != nil {
			t.Fatal(err)
		}
		if hdr.WindowSize > 1<<20 || hdr.WindowSize == 0 {
			t.Fatalf("frame window %d bytes, want at most 1 MiB", hdr.WindowSize)
		}
		if !bytes.Equal(readBlob(t, s, h), data[i]) {
			t.Fatalf("blob %d reads back wrong", i)
		}
	}
}
