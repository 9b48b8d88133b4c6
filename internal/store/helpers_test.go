package store

import (
	"encoding/binary"
	"fmt"
	"time"

	"bytes"
	"context"
	bolt "go.etcd.io/bbolt"
	"io"
	"log/slog"
	"math/rand/v2"
	"testing"

	"pbxsync/internal/index"
)

// testLogger logs through t, so failures show the store's log.
func testLogger(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(tWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type tWriter struct{ t testing.TB }

func (w tWriter) Write(p []byte) (int, error) {
	w.t.Helper()
	w.t.Log(string(bytes.TrimRight(p, "\n")))
	return len(p), nil
}

// newStore opens a writable store in a fresh temp dir with no GC grace.
func newTestStore(t testing.TB, opts ...Option) *Store {
	t.Helper()
	s, err := Open(t.TempDir(), testLogger(t), append([]Option{WithGCGrace(0)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

func randBytes(seed uint64, n int) []byte {
	b := make([]byte, n)
	r := rand.NewChaCha8([32]byte{byte(seed), byte(seed >> 8)})
	_, _ = r.Read(b)
	return b
}

func put(t testing.TB, s *Store, b []byte) index.Hash {
	t.Helper()
	h, n, err := s.PutReader(context.Background(), bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	if n != int64(len(b)) || h != index.Sum(b) {
		t.Fatalf("put: got %s/%d, want %s/%d", h.Short(), n, index.Sum(b).Short(), len(b))
	}
	return h
}

func readBlob(t testing.TB, s *Store, h index.Hash) []byte {
	t.Helper()
	rc, err := s.Open(context.Background(), h)
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

// ageBlob makes an unreferenced blob look put at t (what GC's grace
// period compares): its row of unref, else the row of bucket fresh that
// lists it (and so every blob of that row).
func ageBlob(tb testing.TB, s *Store, h index.Hash, at time.Time) {
	tb.Helper()
	if err := s.update(func(tx *bolt.Tx) error {
		if tx.Bucket(bktRefs).Get(h[:]) != nil {
			return fmt.Errorf("blob %s is referenced", h.Short())
		}
		if u := tx.Bucket(bktUnref); u.Get(h[:]) != nil {
			return u.Put(h[:], u64key(uint64(at.UnixNano())))
		}
		fresh := tx.Bucket(bktFresh)
		c := fresh.Cursor()
		for k, v := c.First(); k != nil; k, v = c.Next() {
			r, err := decodeFresh(k, v)
			if err != nil {
				return err
			}
			for i := range r.len() {
				if r.hash(i) == h {
					p := binary.BigEndian.AppendUint64(nil, uint64(at.UnixNano()))
					return fresh.Put(k, seal(k, append(p, r.hashes...)))
				}
			}
		}
		return fmt.Errorf("blob %s is not unreferenced", h.Short())
	}); err != nil {
		tb.Fatal(err)
	}
}

// mangle replaces the value under key in job's bucket (sub: the path of
// buckets under the job's) by what f makes of it: the
// damage a bad disk page does.
func mangle(tb testing.TB, s *Store, job string, sub [][]byte, key []byte, f func([]byte) []byte) {
	tb.Helper()
	if err := s.update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bktJobs).Bucket([]byte(job))
		if b == nil {
			return fmt.Errorf("no job %q", job)
		}
		for _, n := range sub {
			if b = b.Bucket(n); b == nil {
				return fmt.Errorf("job %q: no bucket %q", job, n)
			}
		}
		v := b.Get(key)
		if v == nil {
			return fmt.Errorf("job %q: no key %q", job, key)
		}
		return b.Put(key, f(append([]byte(nil), v...)))
	}); err != nil {
		tb.Fatal(err)
	}
}
