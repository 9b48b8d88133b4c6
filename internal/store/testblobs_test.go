package store

import (
	"bytes"
	"context"
	"io"
	"math/rand/v2"
	"testing"

	"pbxsync/internal/index"
)

// putRandom puts n incompressible blobs of size bytes and makes them
// durable.
func putRandom(t *testing.T, s *Store, seed uint64, n, size int) ([]index.Hash, [][]byte) {
	t.Helper()
	rng := rand.New(rand.NewPCG(seed, seed+1))
	var hs []index.Hash
	var contents [][]byte
	for range n {
		b := make([]byte, size)
		for i := range b {
			b[i] = byte(rng.Uint32())
		}
		h, _, err := s.PutReader(context.Background(), bytes.NewReader(b))
		if err != nil {
			t.Fatal(err)
		}
		hs, contents = append(hs, h), append(contents, b)
	}
	if err := s.Sync(); err != nil {
		t.Fatal(err)
	}
	return hs, contents
}

// readBack reads every blob of hs and checks it against contents.
func readBack(t *testing.T, s *Store, hs []index.Hash, contents [][]byte) {
	t.Helper()
	for i, h := range hs {
		r, err := s.Open(context.Background(), h)
		if err != nil {
			t.Fatal(err)
		}
		got, err := io.ReadAll(r)
		r.Close()
		if err != nil || !bytes.Equal(got, contents[i]) {
			t.Fatalf("blob %d reads back wrong (%v)", i, err)
		}
	}
}
