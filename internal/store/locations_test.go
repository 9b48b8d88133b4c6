package store

import (
	"context"
	"strings"
	"testing"

	bolt "go.etcd.io/bbolt"

	"pbxsync/internal/index"
)

// withMinRecent merges the recent locations of small blobs into the main
// ones from n on, n a transaction (see mergeRecentAt).
func withMinRecent(n int) Option { return func(o *options) { o.minRecent = n } }

// locationsOf returns every location as the store walks them (forEach),
// failing t when one comes twice or when get disagrees with the walk.
func locationsOf(t *testing.T, s *Store) (main string, nMain, nRecent int, all map[index.Hash]bool) {
	t.Helper()
	all = map[index.Hash]bool{}
	err := s.view(func(tx *bolt.Tx) error {
		l := openLocations(tx)
		main, nMain, nRecent = string(mainLocName(tx)), l.main.Stats().KeyN, l.recent.Stats().KeyN
		return l.forEach(nil, func(k, v []byte) error {
			h := index.Hash(k)
			if all[h] {
				t.Errorf("location of %s walked twice", h.Short())
			}
			all[h] = true
			if got := string(l.get(h)); got != string(v) {
				t.Errorf("location of %s: get %x, walk %x", h.Short(), got, v)
			}
			return nil
		})
	})
	if err != nil {
		t.Fatal(err)
	}
	return main, nMain, nRecent, all
}

// TestLocationsMergeKeepsEveryBlob: puts go to the recent locations, which
// merges fold into a new main bucket; GC deletes from both and its pack
// compaction moves records (a recent location replacing a main one): at
// every step each blob has one location, the one that reads it back, and
// a deleted one none, across a reopen too.
func TestLocationsMergeKeepsEveryBlob(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(dir, testLogger(t), WithGCGrace(0), packAlways, withMinRecent(8))
	if err != nil {
		t.Fatal(err)
	}
	var hs []index.Hash
	var contents [][]byte
	for i := range 6 { // six flushes of 10
		h, c := putRandom(t, s, uint64(20+i), 10, 3000)
		hs, contents = append(hs, h...), append(contents, c...)
		if err := s.Sync(); err != nil {
			t.Fatal(err)
		}
	}
	main, nMain, nRecent, all := locationsOf(t, s)
	t.Logf("after 60 blobs: main %s holds %d, recent %d", main, nMain, nRecent)
	if main == string(bktPacked) || nMain < 40 || nRecent >= 20 || len(all) != 60 {
		t.Fatalf("after 60 blobs in flushes of 10, merges from 8 on: main %s holds %d, recent %d, %d in all", main, nMain, nRecent, len(all))
	}
	readBack(t, s, hs, contents)

	keep, keepC := hs[:20], contents[:20]
	s.Pin(keep...)
	st, err := s.GCStats(context.Background(), nil)
	if err != nil {
		t.Fatal(err)
	}
	if st.Blobs != 40 || st.Packs == 0 {
		t.Fatalf("GC: %+v, want 40 blobs deleted and a pack compacted", st)
	}
	_, _, nRecent, all = locationsOf(t, s)
	if len(all) != 20 || nRecent == 0 {
		t.Fatalf("after GC: %d locations (%d recent), want the 20 kept, moved into recent by the compaction", len(all), nRecent)
	}
	for _, h := range keep {
		if !all[h] {
			t.Fatalf("kept blob %s has no location", h.Short())
		}
	}
	readBack(t, s, keep, keepC)
	for _, h := range hs[20:] {
		if s.Has(h) {
			t.Fatalf("deleted blob %s still there", h.Short())
		}
	}

	h, c := putRandom(t, s, 40, 10, 3000) // a merge after the compaction
	if err := s.Sync(); err != nil {
		t.Fatal(err)
	}
	keep, keepC = append(keep, h...), append(keepC, c...)
	s = reopen(t, s)
	if _, _, _, all = locationsOf(t, s); len(all) != 30 {
		t.Fatalf("after a reopen: %d locations, want 30", len(all))
	}
	readBack(t, s, keep, keepC)
}

// TestOpenRemovesAnInterruptedMerge: a merge that a crash cut short leaves
// a bucket that is not main; Open removes it, and the blobs read back
// from the locations main and recent hold.
func TestOpenRemovesAnInterruptedMerge(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(dir, testLogger(t), packAlways)
	if err != nil {
		t.Fatal(err)
	}
	hs, contents := putRandom(t, s, 7, 30, 2000)
	if err := s.Sync(); err != nil {
		t.Fatal(err)
	}
	// what the first chunks of a merge into packed.1 leave
	err = s.db.Update(func(tx *bolt.Tx) error {
		b, err := tx.CreateBucket([]byte("packed.1"))
		if err != nil {
			return err
		}
		return b.Put(hs[0][:], []byte("half a merge"))
	})
	if err != nil {
		t.Fatal(err)
	}
	s = reopen(t, s)
	main, _, _, all := locationsOf(t, s)
	if main != string(bktPacked) || len(all) != 30 {
		t.Fatalf("after the reopen: main %s, %d locations; want packed and 30", main, len(all))
	}
	if err := s.view(func(tx *bolt.Tx) error {
		if tx.Bucket([]byte("packed.1")) != nil {
			t.Error("the bucket of the interrupted merge is still there")
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	readBack(t, s, hs, contents)
}

// TestOpenUpgradesFormat2: a store of format 2 (every location in bucket
// packed, no recent bucket) opens as format 3 with its blobs; a store of a
// format newer than this program's is refused, naming it.
func TestOpenUpgradesFormat2(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(dir, testLogger(t), packAlways)
	if err != nil {
		t.Fatal(err)
	}
	hs, contents := putRandom(t, s, 8, 30, 2000)
	if err := s.Sync(); err != nil {
		t.Fatal(err)
	}
	setFormat := func(v string) {
		err := s.db.Update(func(tx *bolt.Tx) error {
			l := openLocations(tx)
			if err := l.forEach(nil, func(k, v []byte) error { return l.main.Put(k, v) }); err != nil {
				return err
			}
			if err := tx.DeleteBucket(bktRecent); err != nil {
				return err
			}
			return tx.Bucket(bktMeta).Put(keyFormat, []byte(v))
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	setFormat(formatVersion2)
	s = reopen(t, s)
	var format string
	if err := s.view(func(tx *bolt.Tx) error {
		format = string(tx.Bucket(bktMeta).Get(keyFormat))
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if _, _, _, all := locationsOf(t, s); format != formatVersion || len(all) != 30 {
		t.Fatalf("a store of format 2 reopened: format %q, %d locations; want %q and 30", format, len(all), formatVersion)
	}
	readBack(t, s, hs, contents)

	setFormat("4")
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s2, err := Open(dir, testLogger(t))
	if err == nil {
		s2.Close()
		t.Fatal("a store of format 4 opened")
	}
	if !strings.Contains(err.Error(), `format "4"`) {
		t.Fatalf("opening a store of format 4: %v, want the format named", err)
	}
}
