package syncer

import (
	"context"
	"fmt"
	"log/slog"
	"maps"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"pbxsync/hostmon"
	"pbxsync/internal/config"
	"pbxsync/internal/index"
	"pbxsync/internal/store"
	"pbxsync/internal/wire"
)

// TestPrevGenLookup: the generation before, kept as what it held where the
// newest (changed in place) differs from it, answers every path as the
// whole previous index does, through random edits, removals, additions
// and edits that put an item back.
func TestPrevGenLookup(t *testing.T) {
	t.Parallel()
	rng := rand.New(rand.NewPCG(5, 6))
	cur := idx(dir("d", 0o755, 1))
	for i := range 40 {
		it := file(fmt.Sprintf("d/f%02d", i), fmt.Sprint(i), 0o644, 1)
		cur.Set(it)
	}
	for step := range 200 {
		prev := cur.Clone()
		next := index.New(0)
		var paths []string
		for range 1 + rng.IntN(4) {
			p := fmt.Sprintf("d/f%02d", rng.IntN(45))
			paths = append(paths, p)
			switch rng.IntN(4) {
			case 0: // removed (or stays absent)
				next.Delete(p)
			case 1: // back to what it was
				if it, ok := prev.Get(p); ok {
					next.Set(it)
				} else {
					next.Delete(p)
				}
			default:
				next.Set(file(p, fmt.Sprint(rng.IntN(9)), 0o644, int64(step)))
			}
		}
		pg := newPrevGen(uint64(step+1), cur, next, paths)
		for _, p := range paths { // in place, as newSourceChange does
			if it, ok := next.Get(p); ok {
				cur.Set(it)
			} else {
				cur.Delete(p)
			}
		}
		var want []string
		for p, was := range prev.All() {
			if it, ok := cur.Get(p); !ok || !it.Equal(&was) {
				want = append(want, p)
			}
		}
		for p := range cur.Paths() {
			if !prev.Has(p) {
				want = append(want, p)
			}
		}
		slices.Sort(want)
		if !slices.Equal(pg.paths, want) {
			t.Fatalf("step %d: kept paths %v, the indexes differ at %v", step, pg.paths, want)
		}
		for i := range 45 {
			p := fmt.Sprintf("d/f%02d", i)
			got, gok := pg.lookup(cur, p)
			it, ok := prev.Get(p)
			if gok != ok || (ok && !got.Equal(&it)) {
				t.Fatalf("step %d: %s: lookup %v %v, the previous index holds %v %v", step, p, got, gok, it, ok)
			}
		}
	}
}

// TestSourceEditInPlace: a one-file change on a source is recorded from the
// scan's drift and changes the newest index in place, without a new
// N-sized map (before, every change built the whole index again from the
// scan state, then compared it with the newest one twice). The result is
// the same as before: the store's newest generation, the digest, the
// generation before (for deltas and serving) and, read back at a restart
// from the change record, the same generation before.
func TestSourceEditInPlace(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	base := t.TempDir()
	root := filepath.Join(base, "tree")
	for i := range 300 {
		p := filepath.Join(root, fmt.Sprintf("d%d", i%3), fmt.Sprintf("f%03d.conf", i))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(fmt.Sprintf("[%d]\ntype=endpoint\n", i)), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	st, err := store.Open(filepath.Join(base, "store"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	f, err := hostmon.NewFilter(nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	newJob := func() *job {
		return &job{a: &Agent{store: st, node: "a"}, cfg: config.Job{Name: "j", Path: root, Source: "a"}, isSource: true,
			filter: f, log: slog.New(slog.DiscardHandler), bad: map[string]string{}, targets: map[string]*targetState{}}
	}
	j := newJob()
	if err := j.scanAll(ctx); err != nil {
		t.Fatal(err)
	}
	if err := j.newSourceGeneration(ctx, j.states.Index(), ""); err != nil {
		t.Fatal(err)
	}
	first := j.latest.Number
	firstIndex := j.latest.Index.Clone()
	cur := j.latest.Index

	// one edit, one removal, one new file
	if err := os.WriteFile(filepath.Join(root, "d1", "f001.conf"), []byte("[1]\ntype=endpoint\nallow=ulaw\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(filepath.Join(root, "d2", "f002.conf")); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, "d0", "new.conf"), []byte("[new]\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	j.onLocalChange(ctx, hostmon.Change{Paths: []string{"d1/f001.conf", "d2/f002.conf", "d0/new.conf"}})
	if j.latest.Number == first {
		t.Fatal("no generation recorded for the change")
	}
	if !j.latest.Index.Same(cur) {
		t.Error("the change built a new index instead of changing the newest one in place")
	}
	if local := j.states.Index(); !Equal(j.latest.Index, local) {
		t.Errorf("newest index differs from the tree at %v", Changed(j.latest.Index, local))
	}
	g, err := st.Generation("j", j.latest.Number)
	if err != nil {
		t.Fatal(err)
	}
	if set, del := diffIndex(g.Index, j.latest.Index); len(set)+len(del) != 0 {
		t.Errorf("the store's newest generation differs from the job's: set %v, del %v", set, del)
	}
	if got, want := j.digests.of(j.latest.Index), index.DigestOf(j.latest.Index); got != want {
		t.Error("the kept digest is not the newest index's")
	}
	if want := []string{"d0/new.conf", "d1/f001.conf", "d2/f002.conf"}; !slices.Equal(j.latest.Changed, want) {
		t.Errorf("changed %v, want %v", j.latest.Changed, want)
	}
	checkPrev := func(what string, pg prevGen) {
		t.Helper()
		if pg.number != first {
			t.Fatalf("%s: generation before is %d, want %d", what, pg.number, first)
		}
		for p, was := range firstIndex.All() {
			if it, ok := pg.lookup(j.latest.Index, p); !ok || !it.Equal(&was) {
				t.Errorf("%s: generation before at %s: %v %v, want %v", what, p, it, ok, was)
			}
		}
		if _, ok := pg.lookup(j.latest.Index, "d0/new.conf"); ok {
			t.Errorf("%s: the generation before holds the new file", what)
		}
	}
	checkPrev("after the change", j.prev)
	ref := &job{}
	ref.offer(j.latest.Index, firstIndex)
	if !maps.Equal(maps.Collect(j.serving.all()), maps.Collect(ref.serving.all())) {
		t.Errorf("serving %d hashes, offering both generations serves %d", j.serving.len(), ref.serving.len())
	}

	// a restart reads the generation before from the change record
	j2 := newJob()
	j2.latest = g
	pg, err := j2.prevFromStore(first)
	if err != nil {
		t.Fatal(err)
	}
	checkPrev("read back from the store", pg)
	if !slices.Equal(pg.paths, j.prev.paths) {
		t.Errorf("read back: paths %v, want %v", pg.paths, j.prev.paths)
	}
}

// TestOpPaths: after an apply, a directory whose metadata alone changed is
// not rescanned as a whole when a path below it is (that rescan records
// the directory); one with nothing else below it is.
func TestOpPaths(t *testing.T) {
	t.Parallel()
	ops := []Op{
		{Kind: OpWrite, Path: "a/b/f.conf"},
		{Kind: OpDirMeta, Path: "a/b"},
		{Kind: OpDirMeta, Path: "a"},
		{Kind: OpDirMeta, Path: "c"},
		{Kind: OpMkdir, Path: "d"},
		{Kind: OpWrite, Path: "d/g.conf"},
	}
	if got, want := opPaths(ops), []string{"a/b/f.conf", "c", "d", "d/g.conf"}; !slices.Equal(got, want) {
		t.Fatalf("opPaths = %v, want %v", got, want)
	}
}

// TestCompleteAnnouncementDropped: the source lets go of the complete
// announcement of its newest generation (all of a job's items: tens of
// MiB at 100k files) once every target answered good for it, and keeps
// it while one has not.
func TestCompleteAnnouncementDropped(t *testing.T) {
	t.Parallel()
	j := &job{isSource: true, log: slog.New(slog.DiscardHandler), cfg: config.Job{Name: "j", Targets: []string{"b", "c"}},
		latest: &store.Generation{Number: 3}, targets: map[string]*targetState{"b": {}, "c": {}}}
	full, inc := announceKind{}, announceKind{incremental: true}
	j.announcements = map[announceKind]*wire.Announce{full: {Version: 3}, inc: {Version: 3}}
	j.targets["b"].result = &wire.Result{Job: "j", Version: 3, State: "good"}
	j.targets["c"].result = &wire.Result{Job: "j", Version: 2, State: "good"}
	j.dropCompleteAnnouncements()
	if _, ok := j.announcements[full]; !ok {
		t.Fatal("dropped while target c does not hold the newest generation")
	}
	j.onResult("c", &wire.Result{Job: "j", Version: 3, State: "good"})
	if _, ok := j.announcements[full]; ok {
		t.Error("the complete announcement is kept after every target holds it")
	}
	if _, ok := j.announcements[inc]; !ok {
		t.Error("the incremental announcement was dropped too")
	}
}

// TestLargeChangedListDropped: once every target holds a large
// generation (an initial sync), the source lets go of its list of changed
// paths (one string per file of the job), and keeps it while a target
// does not hold it; a small generation keeps its list.
func TestLargeChangedListDropped(t *testing.T) {
	t.Parallel()
	for _, n := range []int{largeGeneration, 3} {
		changed := make([]string, n)
		for i := range changed {
			changed[i] = fmt.Sprintf("d/f%06d.conf", i)
		}
		j := &job{isSource: true, log: slog.New(slog.DiscardHandler), cfg: config.Job{Name: "j", Targets: []string{"b", "c"}},
			latest: &store.Generation{Number: 3, Changed: changed}, targets: map[string]*targetState{"b": {}, "c": {}}}
		j.targets["b"].result = &wire.Result{Job: "j", Version: 3, State: "good"}
		j.targets["c"].result = &wire.Result{Job: "j", Version: 2, State: "good"}
		j.dropCompleteAnnouncements()
		if len(j.latest.Changed) != n {
			t.Fatalf("%d changed: dropped while target c does not hold the generation", n)
		}
		j.onResult("c", &wire.Result{Job: "j", Version: 3, State: "good"})
		if large := n >= largeGeneration; large != (j.latest.Changed == nil) {
			t.Errorf("%d changed: the list held is %d long after every target holds the generation", n, len(j.latest.Changed))
		}
	}
}
