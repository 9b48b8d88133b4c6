package store

import (
	"bytes"
	"context"
	"io"
	"runtime"
	"testing"

	"pbxsync/internal/index"
	"pbxsync/internal/testwait"
)

// TestPutSmallAllocates: a put of a small compressed blob (a target's
// fetch of one .conf) allocates far less than a copy buffer or a hasher
// of its own (both pooled).
// Not parallel: it reads the process's allocation count.
func TestPutSmallAllocates(t *testing.T) {
	src, dst := newTestStore(t), newTestStore(t)
	const n = 200
	frames := make([][]byte, n)
	hs := make([]index.Hash, n)
	for i := range n {
		hs[i] = put(t, src, randBytes(uint64(i+1), 1500))
		rc, _, err := src.OpenCompressed(hs[i])
		if err != nil {
			t.Fatal(err)
		}
		frames[i], err = io.ReadAll(rc)
		rc.Close()
		if err != nil {
			t.Fatal(err)
		}
	}
	ctx := context.Background()
	// warm: the decoders and the pending map
	if _, err := dst.PutCompressed(ctx, bytes.NewReader(frames[0]), hs[0], 1500); err != nil {
		t.Fatal(err)
	}
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	for i := 1; i < n; i++ {
		if _, err := dst.PutCompressed(ctx, bytes.NewReader(frames[i]), hs[i], 1500); err != nil {
			t.Fatal(err)
		}
	}
	runtime.ReadMemStats(&after)
	per := (after.TotalAlloc - before.TotalAlloc) / (n - 1)
	t.Logf("%d bytes allocated per put of a 1,500-byte blob", per)
	// a copy buffer of its own is 32 KiB, a hasher of its own ~9 KiB;
	// with -race a sync.Pool drops a quarter of what is put back, so
	// there only the copy buffer's share is told
	bound := uint64(8 << 10)
	if testwait.Race() {
		bound = copyBufSize
	}
	if per >= bound {
		t.Errorf("a put of a 1,500-byte blob allocates %d bytes, as much as a copy buffer or a hasher of its own", per)
	}
}
