package store

import (
	"bytes"
	"context"
	"errors"
	"maps"
	"os"
	"path/filepath"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"pbxsync/internal/index"
)

// unpack turns s into a store as written before pack files: every small
// blob a value of bucket blobs, no packs.
func unpack(t *testing.T, s *Store) {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	err := s.db.Update(func(tx *bolt.Tx) error {
		packed := openLocations(tx)
		var keys [][]byte
		if err := packed.forEach(nil, func(k, _ []byte) error {
			keys = append(keys, bytes.Clone(k))
			return nil
		}); err != nil {
			return err
		}
		for _, k := range keys {
			var h index.Hash
			copy(h[:], k)
			l, _, err := getLoc(tx, h)
			if err != nil {
				return err
			}
			s.packMu.RLock()
			data, err := s.readPack(h, l)
			s.packMu.RUnlock()
			if err != nil {
				return err
			}
			if err := tx.Bucket(bktBlobs).Put(h[:], data); err != nil {
				return err
			}
			if err := packed.del(h); err != nil {
				return err
			}
		}
		if err := tx.DeleteBucket(bktPacks); err != nil {
			return err
		}
		_, err := tx.CreateBucket(bktPacks)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	s.closePacks()
	ps, _ := filepath.Glob(filepath.Join(s.packsDir(), "*.pack"))
	for _, p := range ps {
		if err := os.Remove(p); err != nil {
			t.Fatal(err)
		}
	}
}

// reopen closes s and opens its directory again (closed at the test's
// end).
func reopen(t *testing.T, s *Store) *Store {
	t.Helper()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s, err := Open(s.Dir(), testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

// packSizes returns the size of every pack file by number.
func packSizes(t *testing.T, s *Store) map[uint32]int64 {
	t.Helper()
	ents, err := os.ReadDir(s.packsDir())
	if err != nil {
		t.Fatal(err)
	}
	out := map[uint32]int64{}
	for _, e := range ents {
		if n, ok := packNumber(e.Name()); ok {
			info, err := e.Info()
			if err != nil {
				t.Fatal(err)
			}
			out[n] = info.Size()
		}
	}
	return out
}

// TestPackCrashLeftovers: what a crash between a pack write and its
// commit leaves (bytes past the committed size, a pack the database does
// not know) is cut and removed by Open, and the store appends after its
// last committed record.
func TestPackCrashLeftovers(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(dir, testLogger(t), packAlways)
	if err != nil {
		t.Fatal(err)
	}
	hs, contents := putRandom(t, s, 11, 50, 3000)
	committed := packSizes(t, s)[1]
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	f, err := os.OpenFile(filepath.Join(dir, "packs", "000001.pack"), os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Write(appendRecord(nil, index.Sum([]byte("never committed")), []byte("frame"))); err != nil {
		t.Fatal(err)
	}
	f.Close()
	if err := os.WriteFile(filepath.Join(dir, "packs", "000002.pack"), []byte(packMagic+"junk"), 0o600); err != nil {
		t.Fatal(err)
	}
	s, err = Open(dir, testLogger(t), packAlways)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if got := packSizes(t, s); len(got) != 1 || got[1] != committed {
		t.Fatalf("packs after Open: %v, want only pack 1 of %d bytes", got, committed)
	}
	readBack(t, s, hs, contents)
	hs2, contents2 := putRandom(t, s, 12, 5, 3000)
	if got := packSizes(t, s)[1]; got <= committed {
		t.Fatalf("pack 1 has %d bytes after more puts, had %d", got, committed)
	}
	readBack(t, s, append(hs, hs2...), append(contents, contents2...))
}

// TestGCCompactsPacks: once GC deleted at least half of a pack's records,
// it moves the live ones to another pack and removes the pack; they read
// back, also after a reopen.
func TestGCCompactsPacks(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(dir, testLogger(t), WithGCGrace(0), packAlways)
	if err != nil {
		t.Fatal(err)
	}
	hs, contents := putRandom(t, s, 13, 40, 5000)
	keep, keepC := hs[:15], contents[:15]
	s.Pin(keep...)
	st, err := s.GCStats(context.Background(), nil)
	if err != nil {
		t.Fatal(err)
	}
	if st.Blobs != 25 || st.Packs != 1 {
		t.Fatalf("GC: %+v, want 25 blobs deleted and 1 pack compacted", st)
	}
	got := packSizes(t, s)
	if _, ok := got[1]; ok || len(got) != 1 {
		t.Fatalf("packs after GC: %v, want pack 1 removed and one other", got)
	}
	for n, size := range got {
		if want := int64(len(packMagic)) + 15*(packRecHeader+int64(len(frame(t, s, keep[0])))); size > want+15*64 {
			t.Fatalf("pack %d: %d bytes for 15 blobs (about %d expected)", n, size, want)
		}
	}
	readBack(t, s, keep, keepC)
	for _, h := range hs[15:] {
		if s.Has(h) {
			t.Fatalf("deleted blob %s still there", h.Short())
		}
	}
	s = reopen(t, s)
	readBack(t, s, keep, keepC)
}

// TestOpenMovesBlobsIntoPacks: a store written before packs (small blobs
// in bucket blobs) has them moved into packs by Open; they read back.
func TestOpenMovesBlobsIntoPacks(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(dir, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	hs, contents := putRandom(t, s, 14, 300, 20000) // more than one batch
	unpack(t, s)
	s = reopen(t, s)
	var inDB, inPacks int
	if err := s.db.View(func(tx *bolt.Tx) error {
		inDB = tx.Bucket(bktBlobs).Stats().KeyN
		return openLocations(tx).forEach(nil, func(_, _ []byte) error {
			inPacks++
			return nil
		})
	}); err != nil {
		t.Fatal(err)
	}
	if inDB != 0 || inPacks != len(hs) {
		t.Fatalf("after Open: %d blobs in the database, %d in packs; want 0 and %d", inDB, inPacks, len(hs))
	}
	readBack(t, s, hs, contents)
}

func FuzzDecodeRecord(f *testing.F) {
	f.Add(appendRecord(nil, index.Sum([]byte("x")), []byte("a zstd frame")))
	f.Add(appendRecord(nil, index.Sum(nil), nil))
	f.Fuzz(func(t *testing.T, b []byte) {
		h, p, n, err := decodeRecord(b)
		if err != nil {
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("error does not wrap ErrCorrupt: %v", err)
			}
			if errors.Is(err, errRecordSum) && (n > len(b) || len(p) > SmallBlob) {
				t.Fatalf("checksum mismatch with a bad length %d", n)
			}
			return
		}
		if n > len(b) || n != packRecHeader+len(p) {
			t.Fatalf("record of %d bytes, payload %d, input %d", n, len(p), len(b))
		}
		if again := appendRecord(nil, h, p); !bytes.Equal(again, b[:n]) {
			t.Fatal("round trip differs")
		}
	})
}

// packAlways makes a test store put every small blob into a pack, however
// few a commit has (see dbBlobsBytes).
func packAlways(o *options) { o.dbBlobs = -1 }

// TestFewBlobsStayInDB: a commit with few small blobs (a one-file change)
// writes no pack, so it pays one fsync, the database's; the next GC moves
// them into a pack, and they read back there, also after a reopen.
func TestFewBlobsStayInDB(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(dir, testLogger(t), WithGCGrace(0))
	if err != nil {
		t.Fatal(err)
	}
	hs, contents := putRandom(t, s, 17, 3, 2000)
	s.Pin(hs...)
	if got := packSizes(t, s); len(got) != 0 {
		t.Fatalf("packs after a commit of 3 small blobs: %v, want none", got)
	}
	readBack(t, s, hs, contents)
	if _, err := s.GCStats(context.Background(), nil); err != nil {
		t.Fatal(err)
	}
	if got := packSizes(t, s); len(got) != 1 {
		t.Fatalf("packs after GC: %v, want the blobs moved into one", got)
	}
	if err := s.db.View(func(tx *bolt.Tx) error {
		if n := tx.Bucket(bktBlobs).Stats().KeyN; n != 0 {
			t.Errorf("%d blobs left in the database after GC", n)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	readBack(t, s, hs, contents)
	s = reopen(t, s)
	readBack(t, s, hs, contents)
}

// TestPutStoredBlobWritesNothing: a Put does not look up whether the
// blob is stored (dropStored does, when the batch is flushed); a blob put
// again after it was made durable is written nowhere a second time (no
// second pack record, no file left in tmp/), reads back, and an
// unreferenced one gets its GC grace period anew.
func TestPutStoredBlobWritesNothing(t *testing.T) {
	s := newTestStore(t, packAlways)
	small := [][]byte{randBytes(1, 3000), randBytes(2, 5000)}
	large := randBytes(3, 3*SmallBlob)
	for _, b := range append(small, large) {
		put(t, s, b)
	}
	if err := s.Sync(); err != nil {
		t.Fatal(err)
	}
	before := packSizes(t, s)
	old := time.Now().Add(-time.Hour)
	ageBlob(t, s, index.Sum(small[0]), old)
	for _, b := range append(small, large) {
		put(t, s, b)
	}
	if err := s.Sync(); err != nil {
		t.Fatal(err)
	}
	if got := packSizes(t, s); !maps.Equal(got, before) {
		t.Errorf("packs after putting stored blobs again: %v, want %v as before", got, before)
	}
	if left, err := os.ReadDir(s.tmpDir()); err != nil || len(left) != 0 {
		t.Errorf("tmp/ after putting a stored large blob again: %v (%v), want empty", left, err)
	}
	for _, b := range append(small, large) {
		if got := readBlob(t, s, index.Sum(b)); !bytes.Equal(got, b) {
			t.Errorf("blob %s reads back wrong", index.Sum(b).Short())
		}
	}
	if err := s.db.View(func(tx *bolt.Tx) error {
		h := index.Sum(small[0])
		v := tx.Bucket(bktUnref).Get(h[:])
		if v == nil || time.Unix(0, int64(u64val(v))).Before(old.Add(time.Minute)) {
			t.Errorf("unreferenced blob put again: unref time %v, want a new grace period", v)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
}

// TestSmallLookup: smallLookup answers as hasSmall does for blobs in a
// pack, blobs in bucket blobs and blobs the store lacks, with bucket blobs
// empty (skipped) and not; and Missing, which uses it, finds a blob put
// into bucket blobs after bucket blobs was seen empty in an earlier pass.
func TestSmallLookup(t *testing.T) {
	s := newTestStore(t, packAlways)
	packed, _ := putRandom(t, s, 1, 40, 1500)
	absent := index.Sum([]byte("not stored"))
	check := func(what string, hs []index.Hash, want bool) {
		t.Helper()
		if err := s.db.View(func(tx *bolt.Tx) error {
			l := newSmallLookup(tx)
			for _, h := range hs {
				if got, old := l.has(h), hasSmall(tx, h); got != want || old != want {
					t.Errorf("%s: blob %s: smallLookup %v, hasSmall %v; want %v", what, h.Short(), got, old, want)
				}
			}
			return nil
		}); err != nil {
			t.Fatal(err)
		}
	}
	check("packed, bucket blobs empty", packed, true)
	check("absent, bucket blobs empty", []index.Hash{absent}, false)
	if got := s.Missing(append([]index.Hash{absent}, packed...)); len(got) != 1 || got[0] != absent {
		t.Fatalf("Missing: %v, want only %s", got, absent.Short())
	}
	s.opt.dbBlobs = dbBlobsBytes
	inDB, _ := putRandom(t, s, 2, 3, 1500)
	if err := s.db.View(func(tx *bolt.Tx) error {
		if n := tx.Bucket(bktBlobs).Stats().KeyN; n != len(inDB) {
			t.Fatalf("%d blobs in bucket blobs, want %d", n, len(inDB))
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	check("in bucket blobs", inDB, true)
	check("packed, bucket blobs not empty", packed, true)
	check("absent, bucket blobs not empty", []index.Hash{absent}, false)
	if got := s.Missing(append(append([]index.Hash{absent}, inDB...), packed...)); len(got) != 1 || got[0] != absent {
		t.Fatalf("Missing: %v, want only %s", got, absent.Short())
	}
}
