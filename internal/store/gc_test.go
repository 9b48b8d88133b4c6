package store

import (
	"bytes"
	"context"
	"errors"
	"os"
	"testing"
	"time"

	"pbxsync/internal/index"
)

func TestGCKeepsWindowAndNewestGood(t *testing.T) {
	s := newTestStore(t)
	ctx := context.Background()
	job := "etc"
	// Generation i holds file "f" with content "v<i>" plus a shared file.
	hashes := map[uint64]index.Hash{}
	states := []State{StateGood, StateGood, StateBad, StateBad, StateBad, StateApplying}
	for i, st := range states {
		x := makeIndex(t, s, map[string]string{"f": "v" + string(rune('0'+i)), "shared": "same in all"})
		n := addGen(t, s, job, x, st)
		f, _ := x.Get("f")
		hashes[n] = f.Hash
	}
	shared := index.Sum([]byte("same in all"))
	other := addGen(t, s, "other", makeIndex(t, s, map[string]string{"o": "other job"}), StateGood)
	unref := put(t, s, []byte("referenced by nothing"))
	pinned := put(t, s, []byte("pinned by an apply in progress"))
	s.Pin(pinned)

	st, err := s.GCStats(ctx, map[string]int{job: 3})
	if err != nil {
		t.Fatal(err)
	}
	gs, err := s.Generations(job)
	if err != nil {
		t.Fatal(err)
	}
	var nums []uint64
	for _, g := range gs {
		nums = append(nums, g.Number)
	}
	// Newest 3 (4, 5, 6) plus the newest good one (2).
	if len(nums) != 4 || nums[0] != 2 || nums[1] != 4 || nums[3] != 6 {
		t.Fatalf("kept generations %v", nums)
	}
	for n, h := range hashes {
		kept := n == 2 || n >= 4
		if s.Has(h) != kept {
			t.Errorf("generation %d's blob: Has = %v", n, !kept)
		}
		if _, err := s.Generation(job, n); (err == nil) != kept {
			t.Errorf("generation %d: %v", n, err)
		}
	}
	if !s.Has(shared) || !s.Has(pinned) {
		t.Error("a referenced or pinned blob was deleted")
	}
	if s.Has(unref) {
		t.Error("an unreferenced blob survived")
	}
	if _, err := s.Generation("other", other); err != nil {
		t.Error("GC touched a job it was not told about")
	}
	if st.Generations != 2 || st.Blobs != 3 {
		t.Errorf("stats %+v", st)
	}
	// Every kept generation still reads back in full.
	for _, n := range nums {
		g, err := s.Generation(job, n)
		if err != nil {
			t.Fatal(err)
		}
		for it := range g.Index.Items() {
			if it.Kind == index.KindFile {
				if err := s.Verify(ctx, it.Hash); err != nil {
					t.Fatal(err)
				}
			}
		}
	}

	s.Unpin(pinned)
	if err := s.GC(ctx, map[string]int{job: 3}); err != nil {
		t.Fatal(err)
	}
	if s.Has(pinned) {
		t.Error("unpinned blob survived")
	}
}

func TestGCGraceProtectsFreshBlobs(t *testing.T) {
	s, err := Open(t.TempDir(), testLogger(t), WithGCGrace(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	h := put(t, s, []byte("put, generation not recorded yet"))
	if err := s.GC(context.Background(), nil); err != nil {
		t.Fatal(err)
	}
	if !s.Has(h) {
		t.Fatal("fresh blob deleted")
	}
	old := time.Now().Add(-2 * time.Hour)
	ageBlob(t, s, h, old)
	// A second Put of the same content refreshes it.
	put(t, s, []byte("put, generation not recorded yet"))
	if err := s.GC(context.Background(), nil); err != nil || !s.Has(h) {
		t.Fatalf("refreshed blob: %v %v", err, s.Has(h))
	}
	ageBlob(t, s, h, old)
	if err := s.GC(context.Background(), nil); err != nil || s.Has(h) {
		t.Fatalf("old unreferenced blob: %v %v", err, s.Has(h))
	}
}

func TestGCKeepsExtrasWithTheirGeneration(t *testing.T) {
	s := newTestStore(t)
	ctx := context.Background()
	job := "etc"
	early := put(t, s, []byte("local edit before any generation"))
	if err := s.SaveExtra(job, "local-edit sip.conf", early); err != nil {
		t.Fatal(err)
	}
	x := makeIndex(t, s, map[string]string{"a": "a"})
	addGen(t, s, job, x, StateGood) // 1
	addGen(t, s, job, x, StateGood) // 2
	edit := put(t, s, []byte("local edit overwritten by generation 3"))
	if err := s.SaveExtra(job, "local-edit extensions.conf", edit); err != nil {
		t.Fatal(err)
	}
	if err := s.SaveExtra(job, "local-edit extensions.conf", edit); err != nil {
		t.Fatal(err)
	}
	if err := s.SaveExtra(job, "x", index.Sum([]byte("absent"))); !errors.Is(err, ErrNotFound) {
		t.Fatalf("extra of a missing blob: %v", err)
	}
	xs, err := s.Extras(job)
	if err != nil || len(xs) != 2 || xs[0].Generation != 0 || xs[1].Generation != 2 || xs[1].Hash != edit {
		t.Fatalf("Extras: %+v %v", xs, err)
	}
	addGen(t, s, job, x, StateGood) // 3

	// Window of 2 keeps 2 and 3: the early extra (window of generation 1)
	// goes, the later one (generation 2) stays.
	if err := s.GC(ctx, map[string]int{job: 2}); err != nil {
		t.Fatal(err)
	}
	if s.Has(early) || !s.Has(edit) {
		t.Fatalf("after first GC: early %v edit %v", s.Has(early), s.Has(edit))
	}
	addGen(t, s, job, x, StateGood) // 4
	if err := s.GC(ctx, map[string]int{job: 2}); err != nil {
		t.Fatal(err)
	}
	if s.Has(edit) {
		t.Fatal("extra outlived its generation window")
	}
	if xs, _ := s.Extras(job); len(xs) != 0 {
		t.Fatalf("extras left: %+v", xs)
	}
}

func TestGCKeepsJournalBlobs(t *testing.T) {
	s := newTestStore(t)
	newH := put(t, s, []byte("new content being applied"))
	oldH := put(t, s, []byte("old content being replaced"))
	j := &Journal{Generation: 1, Entries: []JournalEntry{
		{Path: "sip.conf", Op: OpWrite, Staged: "/etc/asterisk/.pbxsync-stage/sip.conf", Hash: newH, OldHash: oldH, Mode: 0o640},
	}}
	if err := s.WriteJournal("etc", j); err != nil {
		t.Fatal(err)
	}
	if err := s.GC(context.Background(), map[string]int{"etc": 2}); err != nil {
		t.Fatal(err)
	}
	if !s.Has(newH) || !s.Has(oldH) {
		t.Fatal("GC deleted blobs of a pending journal")
	}
	if err := s.ClearJournal("etc"); err != nil {
		t.Fatal(err)
	}
	if err := s.GC(context.Background(), map[string]int{"etc": 2}); err != nil {
		t.Fatal(err)
	}
	if s.Has(newH) || s.Has(oldH) {
		t.Fatal("blobs outlived their journal")
	}
}

func TestGCRemovesOrphanBlobFile(t *testing.T) {
	s := newTestStore(t)
	ctx := context.Background()
	large := randBytes(7, 3*SmallBlob)
	h := put(t, s, large)
	x := index.Of(index.Item{Path: "big", Kind: index.KindFile, Size: int64(len(large)), Mode: 0o640, Hash: h})
	addGen(t, s, "j", x, StateGood)
	// A crash between renaming a blob file into place and the commit
	// that lists it leaves a file the database does not know.
	orphan := index.Sum([]byte("orphan"))
	if err := os.WriteFile(s.BlobPath(orphan), []byte("whatever"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := s.GC(ctx, map[string]int{"j": 5}); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(s.BlobPath(orphan)); !os.IsNotExist(err) {
		t.Fatal("orphan blob file survived")
	}
	if !bytes.Equal(readBlob(t, s, h), large) {
		t.Fatal("referenced large blob damaged")
	}
}

func TestOpenRemovesLeftoversOfACrash(t *testing.T) {
	s := newTestStore(t)
	dir := s.Dir()
	// What a writer killed mid-Put leaves behind.
	if err := os.WriteFile(dir+"/tmp/blob-12345", []byte("half a frame"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s2, err := Open(dir, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	assertTmpEmpty(t, s2)
}
