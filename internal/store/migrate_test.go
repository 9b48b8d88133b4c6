package store

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"testing"
	"time"

	"pbxsync/internal/index"
)

// writeV1 lays out a format-1 store in dir, as the format-1 code wrote it:
// FORMAT, blobs/xx/<hash> files (zstd frames), jobs/<job>/gen/<n>.meta
// and .index envelopes, next, extras, state and journal.
func writeV1(t *testing.T, dir string, blobs map[index.Hash][]byte, job string, gens []*Generation, xs []Extra, state any, j *Journal) {
	t.Helper()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	write := func(path string, b []byte) {
		t.Helper()
		must(os.MkdirAll(filepath.Dir(path), 0o700))
		must(os.WriteFile(path, b, 0o600))
	}
	write(filepath.Join(dir, "FORMAT"), []byte(formatLine1))
	for h, frame := range blobs {
		write(filepath.Join(dir, "blobs", h.String()[:2], h.String()), frame)
	}
	jd := filepath.Join(dir, "jobs", job)
	for _, g := range gens {
		var items []diskItem
		for _, it := range g.Index.Sorted() {
			d := diskItem{Path: it.Path, Kind: it.Kind.String(), Size: it.Size, Mode: index.UnixMode(it.Mode), MTime: it.MTime, Deleted: it.Deleted}
			if !it.Hash.IsZero() {
				d.Hash = it.Hash.String()
			}
			for _, c := range it.Version {
				d.Version = append(d.Version, diskCounter(c))
			}
			items = append(items, d)
		}
		body, err := json.Marshal(diskIndex{Job: job, Generation: g.Number, Items: items})
		must(err)
		body = append(body, '\n')
		write(filepath.Join(jd, "gen", genName(g.Number, "index")), encodeEnvelope("index", body))
		meta, err := json.Marshal(diskMeta1{Job: job, Generation: g.Number, Time: g.Time, Origin: g.Origin, SourceVersion: g.SourceVersion,
			Changed: g.Changed, State: g.State, Reason: g.Reason, IndexSum: index.Sum(body).String(), IndexItems: len(items)})
		must(err)
		write(filepath.Join(jd, "gen", genName(g.Number, "meta")), encodeEnvelope("meta", meta))
	}
	write(filepath.Join(jd, "next"), encodeEnvelope("next", []byte(fmt.Sprintf(`{"next":%d}`, gens[len(gens)-1].Number+5))))
	var dx []diskExtra
	for _, x := range xs {
		dx = append(dx, diskExtra{Label: x.Label, Hash: x.Hash.String(), Generation: x.Generation, Time: x.Time})
	}
	b, err := json.Marshal(dx)
	must(err)
	write(filepath.Join(jd, "extras"), encodeEnvelope("extras", b))
	b, err = json.Marshal(state)
	must(err)
	write(filepath.Join(jd, "state"), encodeEnvelope("state", b))
	d := diskJournal{Job: job, Generation: j.Generation, Entries: []diskJournalEntry{}}
	for _, e := range j.Entries {
		d.Entries = append(d.Entries, diskJournalEntry{Path: e.Path, Op: e.Op, Staged: e.Staged, Hash: e.Hash.String(), Mode: e.Mode, MTime: e.MTime})
	}
	b, err = json.Marshal(d)
	must(err)
	write(filepath.Join(jd, "journal"), encodeEnvelope("journal", b))
}

func TestMigrateFormat1(t *testing.T) {
	ctx := context.Background()
	// Frames made by a scratch format-2 store: the same zstd frames format
	// 1 kept as files.
	scratch := newTestStore(t)
	blobs := map[index.Hash][]byte{}
	content := map[string][]byte{}
	mk := func(name string, b []byte) index.Hash {
		h := put(t, scratch, b)
		blobs[h] = frame(t, scratch, h)
		content[name] = b
		return h
	}
	item := func(p string, h index.Hash, size int) index.Item {
		return index.Item{Path: p, Kind: index.KindFile, Size: int64(size), Mode: 0o640, MTime: 1700000000000000001, Hash: h,
			Version: index.Vector{{Node: "pbx-a", Value: 1}}}
	}
	small1, small2 := mk("s1", []byte("[general]\nv=1\n")), mk("s2", []byte("[general]\nv=2\n"))
	big := mk("big", randBytes(9, 3*SmallBlob))
	extra := mk("extra", []byte("a local edit"))
	stray := mk("stray", []byte("referenced by nothing"))
	dir := index.Item{Path: "d", Kind: index.KindDir, Mode: 0o755}
	t0 := time.Unix(1700000000, 0).UTC()
	gens := []*Generation{
		{Number: 2, Time: t0, Origin: "pbx-a", State: StateGood, Changed: []string{"d", "d/s.conf"},
			Index: index.Of(dir, item("d/s.conf", small1, 14))},
		{Number: 4, Time: t0.Add(time.Minute), Origin: "pbx-a", SourceVersion: 3, State: StateBad, Reason: "check failed", Changed: []string{"d/s.conf", "big"},
			Index: index.Of(dir, item("d/s.conf", small2, 14), item("big", big, 3*SmallBlob))},
		{Number: 5, Time: t0.Add(2 * time.Minute), Origin: "pbx-a", State: StateApplying, Changed: []string{"d/s.conf"},
			Index: index.Of(dir, item("big", big, 3*SmallBlob))},
	}
	type state struct{ Bad []string }
	j := &Journal{Job: "etc", Generation: 5, Entries: []JournalEntry{{Path: "d/s.conf", Op: OpDelete, Hash: small2}}}
	d := t.TempDir()
	writeV1(t, d, blobs, "etc", gens, []Extra{{Label: "local-edit", Hash: extra, Generation: 4, Time: t0}}, state{Bad: []string{"x"}}, j)

	s, err := Open(d, testLogger(t), WithGCGrace(0))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	infos, err := s.Generations("etc")
	if err != nil || len(infos) != 3 {
		t.Fatalf("Generations: %+v %v", infos, err)
	}
	for i, g := range gens {
		got, err := s.Generation("etc", g.Number)
		if err != nil {
			t.Fatal(err)
		}
		if !index.SameItems(got.Index, g.Index) || got.State != g.State || got.Reason != g.Reason ||
			!reflect.DeepEqual(got.Changed, g.Changed) || !got.Time.Equal(g.Time) || infos[i].Number != g.Number {
			t.Errorf("generation %d: %+v", g.Number, got)
		}
	}
	if n, _ := s.NextGeneration("etc"); n != 10 {
		t.Errorf("next generation %d, want 10 (the format-1 counter)", n)
	}
	if xs, err := s.Extras("etc"); err != nil || len(xs) != 1 || xs[0].Hash != extra {
		t.Errorf("extras: %+v %v", xs, err)
	}
	var st state
	if ok, err := s.JobState("etc", &st); !ok || err != nil || len(st.Bad) != 1 {
		t.Errorf("job state: %+v %v %v", st, ok, err)
	}
	if jj, ok, err := s.ReadJournal("etc"); !ok || err != nil || jj.Entries[0].Hash != small2 {
		t.Errorf("journal: %+v %v %v", jj, ok, err)
	}
	for name, b := range content {
		h := index.Sum(b)
		if got := readBlob(t, s, h); string(got) != string(b) {
			t.Errorf("blob %s differs", name)
		}
	}
	// Small blobs moved into the database, the large one stayed a file,
	// the format-1 metadata is gone.
	if _, err := os.Stat(s.BlobPath(small1)); !os.IsNotExist(err) {
		t.Error("small blob file left after the migration")
	}
	if _, err := os.Stat(s.BlobPath(big)); err != nil {
		t.Error("large blob file gone")
	}
	if _, err := os.Stat(filepath.Join(d, "jobs")); !os.IsNotExist(err) {
		t.Error("format-1 metadata left")
	}
	if b, _ := os.ReadFile(filepath.Join(d, "FORMAT")); string(b) != formatLine {
		t.Errorf("FORMAT %q", b)
	}
	// Reference counts are right: GC keeps what the generations, the extra
	// and the journal use, and deletes only the stray blob.
	gst, err := s.GCStats(ctx, map[string]int{"etc": 5})
	if err != nil {
		t.Fatal(err)
	}
	if gst.Blobs != 1 || s.Has(stray) {
		t.Errorf("GC after migration: %+v, stray kept %v", gst, s.Has(stray))
	}
	for _, h := range []index.Hash{small1, small2, big, extra} {
		if err := s.Verify(ctx, h); err != nil {
			t.Error(err)
		}
	}
	// Keep 1: generations 2 and 4 go (2 is the newest good: kept), and so
	// does small2 once the journal is cleared.
	if err := s.ClearJournal("etc"); err != nil {
		t.Fatal(err)
	}
	if err := s.GC(ctx, map[string]int{"etc": 1}); err != nil {
		t.Fatal(err)
	}
	if s.Has(small2) || !s.Has(small1) || !s.Has(big) {
		t.Errorf("after GC keep 1: small2 %v small1 %v big %v", s.Has(small2), s.Has(small1), s.Has(big))
	}
	if g, err := s.Generation("etc", 2); err != nil || !index.SameItems(g.Index, gens[0].Index) {
		t.Errorf("generation 2 after GC: %v", err)
	}
}

// A crash during the migration leaves a partial database; the next Open
// starts over from the format-1 files.
func TestMigrateFormat1AfterCrash(t *testing.T) {
	scratch := newTestStore(t)
	h := put(t, scratch, []byte("x"))
	d := t.TempDir()
	g := &Generation{Number: 1, Time: time.Unix(1, 0).UTC(), Origin: "a", State: StateGood, Changed: []string{"x"},
		Index: index.Of(index.Item{Path: "x", Kind: index.KindFile, Size: 1, Mode: 0o600, Hash: h})}
	writeV1(t, d, map[index.Hash][]byte{h: frame(t, scratch, h)}, "j", []*Generation{g}, nil, struct{}{}, &Journal{Job: "j"})
	if err := os.WriteFile(filepath.Join(d, dbName), []byte("half a database"), 0o600); err != nil {
		t.Fatal(err)
	}
	s, err := Open(d, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if got, err := s.Generation("j", 1); err != nil || !index.SameItems(got.Index, g.Index) {
		t.Fatalf("%v", err)
	}
	// A crash during the clean-up after the migration leaves format-1
	// files in a format-2 store: the next Open removes them.
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	left := filepath.Join(d, "jobs", "j", "gen")
	if err := os.MkdirAll(left, 0o700); err != nil {
		t.Fatal(err)
	}
	s2, err := Open(d, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	if _, err := os.Stat(filepath.Join(d, "jobs")); !os.IsNotExist(err) {
		t.Fatal("format-1 leftovers survived")
	}
	if got, err := s2.Generation("j", 1); err != nil || !index.SameItems(got.Index, g.Index) {
		t.Fatalf("after the clean-up: %v", err)
	}
}
