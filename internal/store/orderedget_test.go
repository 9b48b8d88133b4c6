package store

import (
	"bytes"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"testing"

	bolt "go.etcd.io/bbolt"

	"pbxsync/internal/index"
)

// orderedBucket opens a bbolt file holding n random 32-byte keys in
// bucket "b" (value: the key's first 16 bytes) and returns its keys
// sorted.
func orderedBucket(tb testing.TB, n int, seed uint64) (*bolt.DB, []index.Hash) {
	tb.Helper()
	db, err := bolt.Open(filepath.Join(tb.TempDir(), "o.db"), 0o600, nil)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { db.Close() })
	rng := rand.New(rand.NewPCG(seed, seed+1))
	keys := make([]index.Hash, n)
	for i := range keys {
		for j := range keys[i] {
			keys[i][j] = byte(rng.Uint32())
		}
	}
	slices.SortFunc(keys, compareHashes)
	err = db.Update(func(tx *bolt.Tx) error {
		b, err := tx.CreateBucket([]byte("b"))
		if err != nil {
			return err
		}
		b.FillPercent = 1 // appended in order
		for _, k := range keys {
			if err := b.Put(k[:], k[:16]); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		tb.Fatal(err)
	}
	return db, keys
}

// TestOrderedGet: an orderedGet answers as Bucket.Get does, for keys in
// ascending order close together (steps) and far apart (seeks), absent
// keys between, before and after the bucket's, keys out of order and
// repeated, and an absent bucket.
func TestOrderedGet(t *testing.T) {
	db, keys := orderedBucket(t, 5000, 1)
	absent := func(h index.Hash) index.Hash { h[31] ^= 1; return h } // a neighbour: not among random keys
	var first, past index.Hash
	for i := range past {
		past[i] = 0xff
	}
	rng := rand.New(rand.NewPCG(3, 4))
	var asc []index.Hash
	for i := 0; i < len(keys); i += 1 + rng.IntN(3*orderedSteps) {
		asc = append(asc, keys[i])
		if rng.IntN(4) == 0 {
			asc = append(asc, absent(keys[i]))
		}
	}
	slices.SortFunc(asc, compareHashes)
	lookups := map[string][]index.Hash{
		"every key":                          keys,
		"ascending, gaps and absent":         asc,
		"before the first and past the last": {first, keys[0], keys[len(keys)-1], past, past},
		"out of order":                       {keys[4000], keys[10], keys[11], absent(keys[3]), keys[4999], keys[0], keys[0]},
	}
	err := db.View(func(tx *bolt.Tx) error {
		b := tx.Bucket([]byte("b"))
		for name, hs := range lookups {
			g := newOrderedGet(b)
			for i, h := range hs {
				want := b.Get(h[:])
				if got := g.get(h); !bytes.Equal(got, want) || (got == nil) != (want == nil) {
					t.Fatalf("%s: lookup %d: got %x, want %x", name, i, got, want)
				}
			}
		}
		g := newOrderedGet(tx.Bucket([]byte("none")))
		if v := g.get(keys[0]); v != nil {
			t.Errorf("an absent bucket answers %x", v)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// BenchmarkOrderedGet: looking up every key of a bucket of 100,000
// locations (as Missing does after an initial sync), and a sparse 1 in
// 50 (a flush's batch), in hash order: one seek each (Bucket.Get) against
// an orderedGet.
func BenchmarkOrderedGet(b *testing.B) {
	db, keys := orderedBucket(b, 100_000, 2)
	every := func(n int) []index.Hash {
		hs := make([]index.Hash, 0, len(keys)/n+1)
		for i := 0; i < len(keys); i += n {
			hs = append(hs, keys[i])
		}
		return hs
	}
	for _, tc := range []struct {
		name string
		hs   []index.Hash
	}{{"all", keys}, {"1in25", every(25)}, {"1in50", every(50)}, {"1in400", every(400)}} {
		b.Run(tc.name+"/Get", func(b *testing.B) {
			for b.Loop() {
				_ = db.View(func(tx *bolt.Tx) error {
					bk := tx.Bucket([]byte("b"))
					for _, h := range tc.hs {
						if bk.Get(h[:]) == nil {
							b.Fatal("a key is missing")
						}
					}
					return nil
				})
			}
		})
		b.Run(tc.name+"/ordered", func(b *testing.B) {
			for b.Loop() {
				_ = db.View(func(tx *bolt.Tx) error {
					g := newOrderedGet(tx.Bucket([]byte("b")))
					for _, h := range tc.hs {
						if g.get(h) == nil {
							b.Fatal("a key is missing")
						}
					}
					return nil
				})
			}
		})
	}
}
