package store

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"

	bolt "go.etcd.io/bbolt"
)

// TestLongChangedListOutOfLine: a generation that changed many paths (a
// first generation) keeps its meta record small, its list out of line, and
// reads back the same list in the same order from every reader; a state
// change keeps the list; GC removes it with its generation.
func TestLongChangedListOutOfLine(t *testing.T) {
	s := newTestStore(t)
	ctx := context.Background()
	const job = "big"
	files := map[string]string{}
	for i := range 400 { // > changedInlineMax

		files[fmt.Sprintf("conf/f%04d.conf", i)] = fmt.Sprint(i)
	}
	x1 := makeIndex(t, s, files)
	changed := make([]string, 0, x1.Len())
	for p := range x1.Paths() {
		changed = append(changed, p)
	}
	slices.Sort(changed)
	slices.Reverse(changed) // the order is kept, not sorted
	g1 := &Generation{Job: job, Origin: "pbx-a", Changed: changed, State: StateApplying, Index: x1}
	if _, err := s.AddGeneration(ctx, g1); err != nil {
		t.Fatal(err)
	}
	metaLen := func(n uint64) int {
		var l int
		if err := s.db.View(func(tx *bolt.Tx) error {
			jb, err := jobBucket(tx, job, false)
			if err != nil {
				return err
			}
			l = len(jb.Bucket(bktGens).Get(u64key(n)))
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		return l
	}
	if l := metaLen(1); l > 1024 {
		t.Errorf("the meta record of a generation with %d changed paths takes %d bytes", len(changed), l)
	}
	check := func(when string) {
		t.Helper()
		infos, err := s.Generations(job)
		if err != nil || len(infos) == 0 || !slices.Equal(infos[0].Changed, changed) {
			t.Fatalf("%s: Generations: %v, first has %d changed paths", when, err, len(infos[0].Changed))
		}
		info, err := s.GenerationInfo(job, 1)
		if err != nil || !slices.Equal(info.Changed, changed) {
			t.Fatalf("%s: GenerationInfo: %v, %d changed paths", when, err, len(info.Changed))
		}
		g, err := s.Generation(job, 1)
		if err != nil || !slices.Equal(g.Changed, changed) {
			t.Fatalf("%s: Generation: %v", when, err)
		}
	}
	check("recorded")
	if err := s.SetState(job, 1, StateGood, ""); err != nil {
		t.Fatal(err)
	}
	check("after SetState")
	if g, ok, err := s.Latest(job, StateGood); err != nil || !ok || !slices.Equal(g.Changed, changed) {
		t.Fatalf("Latest good: %v %v", ok, err)
	}

	// a short list stays inline
	x2 := x1.Clone()
	it, _ := x2.Get("conf/f0001.conf")
	it.Hash, it.Size = put(t, s, []byte("new")), 3
	x2.Set(it)
	g2 := &Generation{Job: job, Origin: "pbx-a", Changed: []string{it.Path}, State: StateGood, Index: x2}
	if _, err := s.AddGeneration(ctx, g2); err != nil {
		t.Fatal(err)
	}
	if info, err := s.GenerationInfo(job, 2); err != nil || !slices.Equal(info.Changed, []string{it.Path}) {
		t.Fatalf("generation 2: %v %v", info.Changed, err)
	}
	if err := s.db.View(func(tx *bolt.Tx) error {
		jb, _ := jobBucket(tx, job, false)
		if jb.Bucket(bktChanged).Bucket(u64key(2)) != nil {
			return errors.New("generation 2's one path went out of line")
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}

	if err := s.GC(ctx, map[string]int{job: 1}); err != nil {
		t.Fatal(err)
	}
	if err := s.db.View(func(tx *bolt.Tx) error {
		jb, _ := jobBucket(tx, job, false)
		if jb.Bucket(bktGens).Get(u64key(1)) != nil {
			return errors.New("GC kept generation 1")
		}
		if jb.Bucket(bktChanged).Bucket(u64key(1)) != nil {
			return errors.New("GC kept generation 1's changed paths")
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
}

// TestChangedListDamaged: a list that does not match its record is
// reported as corrupt, not taken.
func TestChangedListDamaged(t *testing.T) {
	for name, damage := range map[string]func(b *bolt.Bucket) error{
		"missing": func(b *bolt.Bucket) error { return b.Bucket(bktChanged).DeleteBucket(u64key(1)) },
		"short":   func(b *bolt.Bucket) error { return b.Bucket(bktChanged).Bucket(u64key(1)).Delete([]byte{0, 0, 0, 7}) },
		"bad path": func(b *bolt.Bucket) error {
			k := []byte{0, 0, 0, 3}
			return b.Bucket(bktChanged).Bucket(u64key(1)).Put(k, seal(changedSealKey(1, k), []byte("../etc/passwd")))
		},
		"checksum": func(b *bolt.Bucket) error {
			return b.Bucket(bktChanged).Bucket(u64key(1)).Put([]byte{0, 0, 0, 3}, []byte("conf/x.conf\x00\x00\x00\x00\x00\x00\x00\x00"))
		},
	} {
		t.Run(name, func(t *testing.T) {
			s := newTestStore(t)
			files := map[string]string{}
			for i := range 200 { // > changedInlineMax

				files[fmt.Sprintf("f%04d", i)] = fmt.Sprint(i)
			}
			x := makeIndex(t, s, files)
			addGen(t, s, "j", x, StateGood)
			if err := s.db.Update(func(tx *bolt.Tx) error {
				jb, _ := jobBucket(tx, "j", false)
				return damage(jb)
			}); err != nil {
				t.Fatal(err)
			}
			if _, err := s.GenerationInfo("j", 1); !errors.Is(err, ErrCorrupt) {
				t.Errorf("GenerationInfo: %v, want ErrCorrupt", err)
			}
			if _, err := s.Generations("j"); !errors.Is(err, ErrCorrupt) {
				t.Errorf("Generations: %v, want ErrCorrupt", err)
			}
		})
	}
}
