package store

import (
	"bytes"
	"context"
	"errors"
	"testing"
	"time"

	"pbxsync/internal/index"
)

// TestConflictKeptPastGenerations: a conflict record keeps its losing
// content however many generations GC prunes; putting the same record
// again changes nothing; a record whose losing content is not stored is
// refused.
func TestConflictKeptPastGenerations(t *testing.T) {
	s := newTestStore(t)
	ctx := context.Background()
	loser := put(t, s, []byte("the losing edit"))
	c := Conflict{ID: "92f74de100f1d668", Path: "shared.conf", Time: time.Unix(1700000000, 0).UTC(),
		Winner: ConflictSide{Node: "c", Generation: 5, Hash: index.Sum([]byte("the winner"))},
		Loser:  ConflictSide{Node: "a", Hash: loser, Size: 15}}
	if n, err := s.ConflictCount("conf"); n != 0 || err != nil {
		t.Fatalf("a job without records counts %d: %v", n, err)
	}
	for range 2 {
		if err := s.PutConflict("conf", c); err != nil {
			t.Fatal(err)
		}
	}
	if n, err := s.ConflictCount("conf"); n != 1 || err != nil {
		t.Fatalf("one record put twice counts %d: %v", n, err)
	}
	gone := c
	gone.ID, gone.Loser = "0123", ConflictSide{Node: "b", Deleted: true}
	if err := s.PutConflict("conf", gone); err != nil {
		t.Fatal(err)
	}
	missing := c
	missing.ID, missing.Loser.Hash = "4567", index.Sum([]byte("never stored"))
	if err := s.PutConflict("conf", missing); !errors.Is(err, ErrNotFound) {
		t.Errorf("a record of content not in the store: %v, want ErrNotFound", err)
	}
	for i := range 5 {
		addGen(t, s, "conf", makeIndex(t, s, map[string]string{"f": string(rune('a' + i))}), StateGood)
	}
	if err := s.GC(ctx, map[string]int{"conf": 2}); err != nil {
		t.Fatal(err)
	}
	cs, err := s.Conflicts("conf")
	if err != nil {
		t.Fatal(err)
	}
	if n, err := s.ConflictCount("conf"); n != len(cs) || err != nil {
		t.Errorf("%d records count %d: %v", len(cs), n, err)
	}
	if len(cs) != 2 || cs[0].ID != c.ID && cs[1].ID != c.ID {
		t.Fatalf("records: %+v, want the two put", cs)
	}
	for _, got := range cs {
		if got.ID == c.ID && (got.Loser.Hash != loser || got.Winner.Hash != c.Winner.Hash || got.Winner.Generation != 5 || got.Loser.Node != "a") {
			t.Errorf("record read back: %+v, want %+v", got, c)
		}
	}
	var buf bytes.Buffer
	if _, err := s.CopyTo(ctx, loser, &buf); err != nil || buf.String() != "the losing edit" {
		t.Errorf("losing content after GC: %q, %v", buf.String(), err)
	}
}
