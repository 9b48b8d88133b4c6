package store

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"

	"github.com/klauspost/compress/zstd"
	bolt "go.etcd.io/bbolt"

	"pbxsync/internal/index"
)

func TestPutOpenRoundTrip(t *testing.T) {
	s := newTestStore(t)
	peer := newTestStore(t)
	ctx := context.Background()
	cases := map[string][]byte{
		"empty":        {},
		"one byte":     {42},
		"5MB random":   randBytes(1, 5<<20),
		"compressible": bytes.Repeat([]byte("exten => _X.,1,Dial(PJSIP/${EXTEN})\n"), 100000),
	}
	for name, content := range cases {
		t.Run(name, func(t *testing.T) {
			h := put(t, s, content)
			if !s.Has(h) {
				t.Fatal("Has is false after Put")
			}
			if got := readBlob(t, s, h); !bytes.Equal(got, content) {
				t.Fatalf("read %d bytes, want %d", len(got), len(content))
			}
			if err := s.Verify(ctx, h); err != nil {
				t.Fatal(err)
			}
			var buf bytes.Buffer
			if n, err := s.CopyTo(ctx, h, &buf); err != nil || n != int64(len(content)) || !bytes.Equal(buf.Bytes(), content) {
				t.Fatalf("CopyTo: %v", err)
			}
			// Put again: no-op, same hash.
			put(t, s, content)

			// PutFile.
			path := filepath.Join(t.TempDir(), "f")
			if err := os.WriteFile(path, content, 0o600); err != nil {
				t.Fatal(err)
			}
			h2, n2, err := s.PutFile(ctx, path)
			if err != nil || h2 != h || n2 != int64(len(content)) {
				t.Fatalf("PutFile: %s %d %v", h2.Short(), n2, err)
			}

			// Ship the stored frame to a peer as-is.
			rc, size, err := s.OpenCompressed(h)
			if err != nil {
				t.Fatal(err)
			}
			wire, err := io.ReadAll(rc)
			rc.Close()
			if err != nil || int64(len(wire)) != size {
				t.Fatalf("OpenCompressed: %d bytes, size %d, %v", len(wire), size, err)
			}
			if len(wire) == 0 {
				t.Fatal("empty content must still be a zstd frame")
			}
			n, err := peer.PutCompressed(ctx, bytes.NewReader(wire), h, int64(len(content)))
			if err != nil || n != int64(len(content)) {
				t.Fatalf("PutCompressed: %d, %v", n, err)
			}
			if got := readBlob(t, peer, h); !bytes.Equal(got, content) {
				t.Fatal("peer content differs")
			}
			// The frame is standard zstd.
			dec, _ := zstd.NewReader(nil)
			defer dec.Close()
			plain, err := dec.DecodeAll(wire, nil)
			if err != nil || !bytes.Equal(plain, content) {
				t.Fatalf("DecodeAll: %v", err)
			}
		})
	}
	assertTmpEmpty(t, s)
	assertTmpEmpty(t, peer)
}

// assertTmpEmpty checks that nothing but pending blobs is left in tmp/,
// and nothing at all once they were made durable.
func assertTmpEmpty(t *testing.T, s *Store) {
	t.Helper()
	if err := s.Sync(); err != nil {
		t.Fatal(err)
	}
	ents, err := os.ReadDir(s.tmpDir())
	if err != nil {
		t.Fatal(err)
	}
	if len(ents) != 0 {
		t.Fatalf("tmp/ holds %d leftovers, first %s", len(ents), ents[0].Name())
	}
}

func TestOpenMissing(t *testing.T) {
	s := newTestStore(t)
	h := index.Sum([]byte("nope"))
	if _, err := s.Open(context.Background(), h); !errors.Is(err, ErrNotFound) || !strings.Contains(err.Error(), h.String()) {
		t.Fatalf("Open: %v", err)
	}
	if _, _, err := s.OpenCompressed(h); !errors.Is(err, ErrNotFound) {
		t.Fatalf("OpenCompressed: %v", err)
	}
	if s.Has(h) {
		t.Fatal("Has")
	}
}

// genReader yields n pseudo-random bytes without holding them.
type genReader struct {
	r    *rand.ChaCha8
	left int64
	peak uint64
	step int
}

func (g *genReader) Read(p []byte) (int, error) {
	if g.left <= 0 {
		return 0, io.EOF
	}
	if int64(len(p)) > g.left {
		p = p[:g.left]
	}
	// Half random, half zeros: exercises both compressor paths.
	n, _ := g.r.Read(p[:len(p)/2])
	clear(p[n:])
	g.left -= int64(len(p))
	if g.step++; g.step%64 == 0 {
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		g.peak = max(g.peak, ms.HeapInuse)
	}
	return len(p), nil
}

func TestPutStreamingBoundedMemory(t *testing.T) {
	if testing.Short() {
		t.Skip("streams 200 MB")
	}
	s := newTestStore(t)
	size := int64(200 << 20)
	runtime.GC()
	g := &genReader{r: rand.NewChaCha8([32]byte{7}), left: size}
	h, n, err := s.PutReader(context.Background(), g)
	if err != nil {
		t.Fatal(err)
	}
	if n != size {
		t.Fatalf("n = %d", n)
	}
	t.Logf("peak HeapInuse while streaming %d MB: %.1f MB", size>>20, float64(g.peak)/(1<<20))
	if g.peak > 64<<20 {
		t.Fatalf("HeapInuse peaked at %d MB", g.peak>>20)
	}
	// Reading it back is bounded too, and verifies the hash.
	rc, err := s.Open(context.Background(), h)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	var peak uint64
	buf := make([]byte, 256<<10)
	var total int64
	for i := 0; ; i++ {
		k, err := rc.Read(buf)
		total += int64(k)
		if i%64 == 0 {
			var ms runtime.MemStats
			runtime.ReadMemStats(&ms)
			peak = max(peak, ms.HeapInuse)
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	t.Logf("peak HeapInuse while reading: %.1f MB", float64(peak)/(1<<20))
	if total != size || peak > 64<<20 {
		t.Fatalf("read %d bytes, peak %d MB", total, peak>>20)
	}
}

func TestFlippedByteDetected(t *testing.T) {
	for _, size := range []int{10 << 10, 300 << 10} { // in the database, a file
		s := newTestStore(t)
		content := randBytes(3, size)
		h := put(t, s, content)
		if err := s.Sync(); err != nil {
			t.Fatal(err)
		}
		damageBlob(t, s, h, func(b []byte) []byte { b[len(b)/2] ^= 0x10; return b })
		rc, err := s.Open(context.Background(), h)
		if err != nil {
			t.Fatal(err)
		}
		_, err = io.ReadAll(rc)
		rc.Close()
		if !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), h.String()) {
			t.Fatalf("%d bytes: read of damaged blob: %v", size, err)
		}
		// Moved aside, so that a good copy can be stored again.
		if s.Has(h) {
			t.Fatalf("%d bytes: damaged blob still in place", size)
		}
		if ents, _ := os.ReadDir(s.corruptDir()); len(ents) != 1 {
			t.Fatalf("%d bytes: corrupt/ holds %d files", size, len(ents))
		}
		put(t, s, content)
		if err := s.Verify(context.Background(), h); err != nil {
			t.Fatal(err)
		}
	}
}

// damageBlob replaces the stored frame of blob h (a file or a database
// value) by what f makes of it.
func damageBlob(t *testing.T, s *Store, h index.Hash, f func([]byte) []byte) {
	t.Helper()
	if b, err := os.ReadFile(s.BlobPath(h)); err == nil {
		if err := os.WriteFile(s.BlobPath(h), f(b), 0o600); err != nil {
			t.Fatal(err)
		}
		return
	}
	var l packLoc
	var packed bool
	if err := s.db.View(func(tx *bolt.Tx) error {
		var err error
		l, packed, err = getLoc(tx, h)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if packed {
		damagePacked(t, s, h, l, f)
		return
	}
	if err := s.update(func(tx *bolt.Tx) error {
		v := tx.Bucket(bktBlobs).Get(h[:])
		if v == nil {
			return fmt.Errorf("blob %s is nowhere", h.Short())
		}
		return tx.Bucket(bktBlobs).Put(h[:], f(bytes.Clone(v)))
	}); err != nil {
		t.Fatal(err)
	}
}

// damagePacked replaces the payload of small blob h's record at l: in
// place when f keeps its length (the record's checksum fails then), else
// by a new record (checksum good, content wrong).
func damagePacked(t *testing.T, s *Store, h index.Hash, l packLoc, f func([]byte) []byte) {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	s.packMu.RLock()
	data, err := s.readPack(h, l)
	s.packMu.RUnlock()
	if err != nil {
		t.Fatal(err)
	}
	bad := f(bytes.Clone(data))
	if len(bad) == len(data) {
		pf, err := os.OpenFile(s.packPath(l.pack), os.O_RDWR, 0)
		if err != nil {
			t.Fatal(err)
		}
		defer pf.Close()
		if _, err := pf.WriteAt(bad, l.off+packRecHeader); err != nil {
			t.Fatal(err)
		}
		return
	}
	w, err := s.appendPacks([]packRec{{h: h, data: bad}})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.db.Update(func(tx *bolt.Tx) error { return recordPackWrite(tx, w, nil) }); err != nil {
		t.Fatal(err)
	}
}

// frame returns the stored frame of blob h.
func frame(t *testing.T, s *Store, h index.Hash) []byte {
	t.Helper()
	rc, _, err := s.OpenCompressed(h)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// A valid frame under the wrong name (the zstd checksum passes) is caught
// by the hash check at EOF.
func TestWrongContentDetectedAtEOF(t *testing.T) {
	s := newTestStore(t)
	a, b := put(t, s, []byte("alpha")), put(t, s, []byte("beta"))
	if err := s.Sync(); err != nil {
		t.Fatal(err)
	}
	fb := frame(t, s, b)
	damageBlob(t, s, a, func([]byte) []byte { return fb })
	err := s.Verify(context.Background(), a)
	if !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), a.String()) {
		t.Fatalf("Verify: %v", err)
	}
	// A read-only store reports but never moves anything.
	put(t, s, []byte("alpha"))
	fg := frame(t, s, put(t, s, []byte("gamma")))
	if err := s.Sync(); err != nil {
		t.Fatal(err)
	}
	damageBlob(t, s, a, func([]byte) []byte { return fg })
	ro, err := OpenReadOnly(s.Dir(), testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	defer ro.Close()
	if err := ro.Verify(context.Background(), a); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("read-only Verify: %v", err)
	}
	if !s.Has(a) {
		t.Fatal("read-only store moved a blob")
	}
}

func compress(t testing.TB, b []byte) []byte {
	t.Helper()
	enc, err := zstd.NewWriter(nil)
	if err != nil {
		t.Fatal(err)
	}
	defer enc.Close()
	return enc.EncodeAll(b, nil)
}

func TestPutCompressedRejects(t *testing.T) {
	ctx := context.Background()
	content := []byte("[general]\ncontext=default\n")
	good := index.Sum(content)
	other := index.Sum([]byte("something else"))
	bomb := compress(t, make([]byte, 50<<20))
	cases := []struct {
		name    string
		stream  []byte
		want    index.Hash
		maxSize int64
		corrupt bool
	}{
		{"wrong hash", compress(t, content), other, 1 << 20, true},
		{"zip bomb", bomb, index.Sum(make([]byte, 50<<20)), 1 << 20, true},
		{"garbage", randBytes(9, 5000), good, 1 << 20, true},
		{"truncated", compress(t, content)[:10], good, 1 << 20, true},
		{"trailing bytes", append(compress(t, content), 1, 2, 3), good, 1 << 20, true},
		{"empty input", nil, good, 1 << 20, true},
		{"negative max", compress(t, content), good, -1, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s := newTestStore(t)
			_, err := s.PutCompressed(ctx, bytes.NewReader(c.stream), c.want, c.maxSize)
			if err == nil {
				t.Fatal("accepted")
			}
			if errors.Is(err, ErrCorrupt) != c.corrupt {
				t.Fatalf("ErrCorrupt = %v: %v", !c.corrupt, err)
			}
			if !strings.Contains(err.Error(), c.want.String()) {
				t.Fatalf("error does not name the blob: %v", err)
			}
			t.Log(err)
			if s.Has(c.want) || s.Has(good) {
				t.Fatal("a blob was left behind")
			}
			assertTmpEmpty(t, s)
		})
	}
}

type failingReader struct {
	r   io.Reader
	err error
}

func (f *failingReader) Read(p []byte) (int, error) {
	n, err := f.r.Read(p)
	if err == io.EOF {
		return n, f.err
	}
	return n, err
}

func TestPutCompressedReadErrorIsNotCorrupt(t *testing.T) {
	s := newTestStore(t)
	content := randBytes(4, 1<<20)
	stream := compress(t, content)
	netErr := errors.New("stream reset by peer")
	_, err := s.PutCompressed(context.Background(), &failingReader{r: bytes.NewReader(stream[:len(stream)/2]), err: netErr}, index.Sum(content), 1<<20)
	if !errors.Is(err, netErr) || errors.Is(err, ErrCorrupt) {
		t.Fatalf("got %v", err)
	}
	assertTmpEmpty(t, s)
}

func TestPutReaderContextCancel(t *testing.T) {
	s := newTestStore(t)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, _, err := s.PutReader(ctx, bytes.NewReader(randBytes(5, 1<<20)))
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("got %v", err)
	}
	assertTmpEmpty(t, s)
}

func TestConcurrentPuts(t *testing.T) {
	s := newTestStore(t)
	contents := [][]byte{randBytes(10, 100<<10), randBytes(11, 3<<10), {}, []byte("x")}
	var wg sync.WaitGroup
	for i := range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := contents[i%len(contents)]
			h, _, err := s.PutReader(context.Background(), bytes.NewReader(c))
			if err != nil {
				t.Error(err)
				return
			}
			rc, err := s.Open(context.Background(), h)
			if err != nil {
				t.Error(err)
				return
			}
			got, err := io.ReadAll(rc)
			rc.Close()
			if err != nil || !bytes.Equal(got, c) {
				t.Errorf("read back: %v", err)
			}
		}()
	}
	wg.Wait()
	assertTmpEmpty(t, s)
}

// heapAlloc is the heap in use after two collections (the second empties
// the sync.Pools, bbolt's page pool among them).
func heapAlloc() uint64 {
	runtime.GC()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc
}

// TestPendingMapShrinks: once the blobs of a large batch are durable, the
// map that held them pending does not stay at its largest size (a Go map
// never shrinks: the tens of thousands of blobs an initial sync's fetch
// had pending at once stayed allocated while the agent idled, 4.4 MB of
// a 100k target's idle heap).
func TestPendingMapShrinks(t *testing.T) {
	s := newTestStore(t)
	ctx := context.Background()
	put := func(i int) {
		if _, _, err := s.PutReader(ctx, strings.NewReader(fmt.Sprint("blob ", i))); err != nil {
			t.Fatal(err)
		}
	}
	put(-1) // the codecs are pooled before the heap is measured
	if err := s.Sync(); err != nil {
		t.Fatal(err)
	}
	before := heapAlloc()
	const n = 10000 // all pending: far below flushPendingBytes
	for i := range n {
		put(i)
	}
	if err := s.Sync(); err != nil {
		t.Fatal(err)
	}
	held := int64(heapAlloc()) - int64(before)
	t.Logf("heap held after %d small blobs are durable: %d KiB", n, held>>10)
	if held > 256<<10 {
		t.Fatalf("%d KiB of heap held after the pending blobs were made durable", held>>10)
	}
	put(n) // still usable
	if err := s.Sync(); err != nil {
		t.Fatal(err)
	}
}

// TestReleaseCodecs: the pooled codecs are closed and later puts and
// reads make new ones.
func TestReleaseCodecs(t *testing.T) {
	s := newTestStore(t)
	h := put(t, s, []byte("some content, compressed"))
	_ = readBlob(t, s, h)
	if len(s.encoders) == 0 || len(s.decoders) == 0 {
		t.Fatalf("%d encoders, %d decoders pooled after a put and a read", len(s.encoders), len(s.decoders))
	}
	s.ReleaseCodecs()
	if len(s.encoders) != 0 || len(s.decoders) != 0 {
		t.Fatalf("%d encoders, %d decoders pooled after ReleaseCodecs", len(s.encoders), len(s.decoders))
	}
	h2 := put(t, s, []byte("more content, compressed"))
	if got := readBlob(t, s, h2); string(got) != "more content, compressed" {
		t.Fatalf("read %q after ReleaseCodecs", got)
	}
	if got := readBlob(t, s, h); string(got) != "some content, compressed" {
		t.Fatalf("read %q after ReleaseCodecs", got)
	}
}
