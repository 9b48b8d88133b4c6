package syncer

import (
	"encoding/json"
	"fmt"
	"maps"
	"math/rand/v2"
	"testing"

	"pbxsync/internal/index"
	"pbxsync/internal/wire"
)

// TestOfferChange: updating the served content by each generation's
// changes serves exactly what offering the two whole generations serves,
// through a random sequence of edits, removals, new files, shared content
// and content that comes back.
func TestOfferChange(t *testing.T) {
	t.Parallel()
	rng := rand.New(rand.NewPCG(3, 4))
	cur := idx(dir("d", 0o755, 1))
	for i := range 30 {
		it := file(fmt.Sprintf("d/f%02d", i), fmt.Sprint(i%7), 0o644, 1)
		cur.Set(it)
	}
	j := &job{}
	j.offer(cur, index.Index{})
	for step := range 300 {
		next := cur.Clone()
		var diff []string
		for range 1 + rng.IntN(3) {
			p := fmt.Sprintf("d/f%02d", rng.IntN(35))
			if rng.IntN(4) == 0 {
				next.Delete(p)
			} else {
				next.Set(file(p, fmt.Sprint(rng.IntN(9)), 0o644, int64(step)))
			}
			diff = append(diff, p)
		}
		j.offerChange(next, IndexLookup(cur), diff)
		ref := &job{}
		ref.offer(next, cur)
		if !maps.Equal(maps.Collect(j.serving.all()), maps.Collect(ref.serving.all())) {
			t.Fatalf("step %d: serving %d hashes, offering both generations serves %d", step, j.serving.len(), ref.serving.len())
		}
		files := map[index.Hash]int{}
		for it := range next.Items() {
			if it.Kind == index.KindFile {
				files[it.Hash]++
			}
		}
		for h := range j.serving.all() {
			if got := j.servedRefs.count(j.serving, h); got != files[h] {
				t.Fatalf("step %d: %d files counted of content %x, the generation has %d", step, got, h[:4], files[h])
			}
		}
		cur = next
	}

}

// TestServedRefsCompact: the served set of 1,000 files of distinct content
// and 10 of one content keeps a count for that one content only.
func TestServedRefsCompact(t *testing.T) {
	t.Parallel()
	cur := idx(dir("d", 0o755, 1))
	for i := range 1000 {
		it := file(fmt.Sprintf("d/f%04d", i), fmt.Sprint(i), 0o644, 1)
		cur.Set(it)
	}
	for i := range 10 {
		it := file(fmt.Sprintf("d/same%d", i), "same", 0o644, 1)
		cur.Set(it)
	}
	j := &job{}
	j.offer(cur, index.Index{})
	if j.serving.len() != 1001 || len(j.servedRefs.dup) != 1 || len(j.servedRefs.notCur) != 0 {
		t.Fatalf("serving %d, counts kept for %d contents, %d not of the newest; want 1001, 1, 0",
			j.serving.len(), len(j.servedRefs.dup), len(j.servedRefs.notCur))
	}
	same3, _ := cur.Get("d/same3")
	if n := j.servedRefs.count(j.serving, same3.Hash); n != 10 {
		t.Fatalf("count of the shared content: %d, want 10", n)
	}
}

// TestSplitAnnouncement: a complete announcement of 100,000 files goes in
// parts whose JSON (the buffer encoding/json grows and keeps pooled) is at
// most about announcePartBytes, the default part size of an agent; and a
// part size that would make more than wire.MaxParts parts is raised.
func TestSplitAnnouncement(t *testing.T) {
	t.Parallel()
	msg := &wire.Announce{Job: "confs", Version: 7, Origin: "src"}
	for i := range 100000 {
		msg.Items = append(msg.Items, wire.Item{Path: fmt.Sprintf("dir%03d/extension-%06d.conf", i%100, i), Kind: 1, Size: 1400,
			Mode: 0o644, MTime: 1700000000000000000 + int64(i), Hash: make([]byte, 32), Version: []index.Counter{{Node: "src", Value: 3}}})
	}
	const maxJSON = announcePartBytes // what encoding one part may hold
	parts := wire.Split(msg, announcePartBytes)
	items := 0
	for i, p := range parts {
		b, err := json.Marshal(p)
		if err != nil {
			t.Fatal(err)
		}
		if len(b) > maxJSON {
			t.Errorf("part %d of %d: %d bytes of JSON, want at most %d", i, len(parts), len(b), maxJSON)
		}
		items += len(p.Items)
	}
	if items != len(msg.Items) || len(parts) < 2 {
		t.Errorf("%d parts of %d items in all, want every one of %d items in parts", len(parts), items, len(msg.Items))
	}
	if parts := wire.Split(msg, 64); len(parts) > wire.MaxParts {
		t.Errorf("part size 64: %d parts, want at most %d", len(parts), wire.MaxParts)
	}
}
