package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"reflect"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"pbxsync/internal/index"
)

// makeIndex puts the given files into s and returns an index of them (plus
// a directory).
func makeIndex(t testing.TB, s *Store, files map[string]string) index.Index {
	t.Helper()
	x := index.Of(index.Item{Path: "conf", Kind: index.KindDir, Mode: 0o755})
	for p, c := range files {
		h := put(t, s, []byte(c))
		x.Set(index.Item{Path: p, Kind: index.KindFile, Size: int64(len(c)), Mode: 0o640, MTime: 1700000000123456789, Hash: h,
			Version: index.Vector{{Node: "pbx-a", Value: 3}, {Node: "pbx-b", Value: 1}}})
	}
	return x
}

func addGen(t testing.TB, s *Store, job string, x index.Index, st State) uint64 {
	t.Helper()
	changed := make([]string, 0, x.Len())
	for p := range x.Paths() {
		changed = append(changed, p)
	}
	g := &Generation{Job: job, Origin: "pbx-a", SourceVersion: 7, Changed: changed, State: st, Index: x}
	n, err := s.AddGeneration(context.Background(), g)
	if err != nil {
		t.Fatal(err)
	}
	if g.Number != n {
		t.Fatalf("g.Number %d, returned %d", g.Number, n)
	}
	return n
}

func TestGenerations(t *testing.T) {
	s := newTestStore(t)
	ctx := context.Background()
	job := "asterisk-etc"

	if gs, err := s.Generations(job); err != nil || len(gs) != 0 {
		t.Fatalf("unknown job: %v %v", gs, err)
	}
	if _, ok, err := s.Latest(job, StateGood); ok || err != nil {
		t.Fatalf("Latest on empty job: %v %v", ok, err)
	}
	if n, err := s.NextGeneration(job); n != 1 || err != nil {
		t.Fatalf("NextGeneration = %d, %v", n, err)
	}

	x1 := makeIndex(t, s, map[string]string{"conf/sip.conf": "a", "extensions.conf": "", "conf/empty": ""})
	before := time.Now()
	n1 := addGen(t, s, job, x1, "")
	if n1 != 1 {
		t.Fatalf("first generation is %d", n1)
	}
	x2 := makeIndex(t, s, map[string]string{"conf/sip.conf": "b", "extensions.conf": "exten"})
	n2 := addGen(t, s, job, x2, StateApplying)
	if n2 != 2 {
		t.Fatalf("second generation is %d", n2)
	}

	g1, err := s.Generation(job, 1)
	if err != nil {
		t.Fatal(err)
	}
	if !index.SameItems(g1.Index, x1) {
		t.Fatalf("index round trip:\n got %+v\nwant %+v", g1.Index, x1)
	}
	if g1.State != StateApplying || g1.Origin != "pbx-a" || g1.SourceVersion != 7 || g1.Time.Before(before.Add(-time.Second)) || len(g1.Changed) != 4 {
		t.Fatalf("metadata: %+v", g1)
	}

	if err := s.SetState(job, 1, StateGood, ""); err != nil {
		t.Fatal(err)
	}
	if err := s.SetState(job, 2, StateBad, "Reload pbx_config.so: An unknown error occurred"); err != nil {
		t.Fatal(err)
	}
	if err := s.SetState(job, 9, StateGood, ""); !errors.Is(err, ErrNotFound) {
		t.Fatalf("SetState of missing generation: %v", err)
	}
	if err := s.SetState(job, 1, "weird", ""); err == nil {
		t.Fatal("accepted unknown state")
	}

	gs, err := s.Generations(job)
	if err != nil {
		t.Fatal(err)
	}
	if len(gs) != 2 || gs[0].Number != 1 || gs[1].Number != 2 || gs[0].State != StateGood || gs[1].State != StateBad ||
		gs[1].Reason != "Reload pbx_config.so: An unknown error occurred" {
		t.Fatalf("Generations: %+v", gs)
	}
	good, ok, err := s.Latest(job, StateGood)
	if err != nil || !ok || good.Number != 1 || !index.SameItems(good.Index, x1) {
		t.Fatalf("Latest good: %v %v %+v", ok, err, good)
	}
	if _, ok, _ := s.Latest(job, StateRolledBack); ok {
		t.Fatal("Latest rolled-back found one")
	}
	if _, err := s.Generation(job, 3); !errors.Is(err, ErrNotFound) || !strings.Contains(err.Error(), `"asterisk-etc" generation 3`) {
		t.Fatalf("missing generation: %v", err)
	}
	if jobs, err := s.Jobs(); err != nil || !reflect.DeepEqual(jobs, []string{job}) {
		t.Fatalf("Jobs: %v %v", jobs, err)
	}

	// The history --json contract.
	b, err := json.Marshal(gs[1])
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"generation", "time", "origin", "changed", "state", "reason", "source_version"} {
		if _, ok := m[k]; !ok {
			t.Errorf("history JSON lacks %q: %s", k, b)
		}
	}
	if len(m) != 7 || m["state"] != "bad" || m["generation"] != float64(2) {
		t.Errorf("history JSON: %s", b)
	}
	// changed is [] not null, even when empty.
	n3, err := s.AddGeneration(ctx, &Generation{Job: job, Index: x2})
	if err != nil {
		t.Fatal(err)
	}
	gs, _ = s.Generations(job)
	if b, _ := json.Marshal(gs[2]); !strings.Contains(string(b), `"changed":[]`) || gs[2].Number != n3 {
		t.Errorf("empty changed: %s", b)
	}
}

func TestAddGenerationRefuses(t *testing.T) {
	s := newTestStore(t)
	ctx := context.Background()
	missing := index.Sum([]byte("never stored"))
	x := makeIndex(t, s, map[string]string{"a.conf": "a"})
	x.Set(index.Item{Path: "lost.conf", Kind: index.KindFile, Size: 12, Mode: 0o644, Hash: missing})
	_, err := s.AddGeneration(ctx, &Generation{Job: "j", Index: x})
	if !errors.Is(err, ErrNotFound) || !strings.Contains(err.Error(), "lost.conf") || !strings.Contains(err.Error(), missing.String()) || !strings.Contains(err.Error(), `"j"`) {
		t.Fatalf("missing blob: %v", err)
	}
	// blobs are checked a chunk at a time: missing ones in two chunks
	// are all named (the items share one stored blob but for two)
	big := index.New(0)
	a, _ := x.Get("a.conf")
	for i := range missingChunk + 10 {
		it := a
		it.Path = fmt.Sprintf("d/f%05d.conf", i)
		if i == 3 || i == missingChunk+5 {
			it.Hash = index.Sum([]byte(it.Path))
		}
		big.Set(it)
	}
	_, err = s.AddGeneration(ctx, &Generation{Job: "big", Index: big})
	if !errors.Is(err, ErrNotFound) || !strings.Contains(err.Error(), "2 blobs missing") ||
		!strings.Contains(err.Error(), "d/f00003.conf") || !strings.Contains(err.Error(), fmt.Sprintf("d/f%05d.conf", missingChunk+5)) {
		t.Fatalf("blobs missing in two chunks: %v", err)
	}
	// A deleted file needs no blob.
	x.Set(index.Item{Path: "lost.conf", Kind: index.KindFile, Deleted: true, Hash: missing})
	if _, err := s.AddGeneration(ctx, &Generation{Job: "j", Index: x}); err != nil {
		t.Fatal(err)
	}

	bad := []struct {
		name string
		g    Generation
	}{
		{"dotdot path", Generation{Job: "j", Index: index.Of(index.Item{Path: "../etc/passwd", Kind: index.KindDir})}},
		{"absolute changed", Generation{Job: "j", Changed: []string{"/etc/passwd"}}},
		// (an index key that differs from its item's path, once refused
		// here, cannot be made: an Index keys each item by its Path)
		{"bad state", Generation{Job: "j", State: "maybe"}},
		{"bad mode", Generation{Job: "j", Index: index.Of(index.Item{Path: "d", Kind: index.KindDir, Mode: os.ModeDir | 0o755})}},
		{"empty job", Generation{Job: ""}},
	}
	for _, c := range bad {
		if _, err := s.AddGeneration(ctx, &c.g); err == nil {
			t.Errorf("%s: accepted", c.name)
		}
	}
	gs, _ := s.Generations("j")
	if len(gs) != 1 {
		t.Fatalf("%d generations recorded", len(gs))
	}
}

func TestLongReasonTruncated(t *testing.T) {
	s := newTestStore(t)
	n := addGen(t, s, "j", index.Index{}, StateApplying)
	if err := s.SetState("j", n, StateBad, strings.Repeat("é", MaxReasonLen)); err != nil {
		t.Fatal(err)
	}
	g, err := s.Generation("j", n)
	if err != nil || len(g.Reason) > MaxReasonLen || !strings.HasSuffix(g.Reason, "(truncated)") {
		t.Fatalf("%v %d", err, len(g.Reason))
	}
}

func TestNumbersNeverReused(t *testing.T) {
	s := newTestStore(t)
	x := makeIndex(t, s, map[string]string{"a": "a"})
	for range 5 {
		addGen(t, s, "j", x, StateGood)
	}
	if err := s.GC(context.Background(), map[string]int{"j": 1}); err != nil {
		t.Fatal(err)
	}
	if n := addGen(t, s, "j", x, StateGood); n != 6 {
		t.Fatalf("after GC: %d", n)
	}
	// Even with a damaged counter, the newest existing generation bounds
	// the number.
	mangle(t, s, "j", nil, keyNext, func([]byte) []byte { return []byte("junk") })
	if n := addGen(t, s, "j", x, StateGood); n != 7 {
		t.Fatalf("with damaged counter: %d", n)
	}
}

func TestSecondInstanceReads(t *testing.T) {
	s := newTestStore(t)
	x := makeIndex(t, s, map[string]string{"sip.conf": "[general]\n"})
	n := addGen(t, s, "pbx", x, StateGood)

	if _, err := Open(s.Dir(), nil); !errors.Is(err, ErrLocked) {
		t.Fatalf("second writer: %v", err)
	}
	ro, err := OpenReadOnly(s.Dir(), testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	defer ro.Close()
	gs, err := ro.Generations("pbx")
	if err != nil || len(gs) != 1 || gs[0].Number != n || gs[0].State != StateGood {
		t.Fatalf("read-only Generations: %+v %v", gs, err)
	}
	// Changes by the writer show up at once.
	if err := s.SetState("pbx", n, StateRolledBack, "rollback to 0"); err != nil {
		t.Fatal(err)
	}
	g, err := ro.Generation("pbx", n)
	if err != nil || g.State != StateRolledBack || !index.SameItems(g.Index, x) {
		t.Fatalf("read-only Generation: %+v %v", g, err)
	}
	sip, _ := x.Get("sip.conf")
	if got := readBlob(t, ro, sip.Hash); string(got) != "[general]\n" {
		t.Fatalf("read-only blob: %q", got)
	}
	if _, _, err := ro.PutReader(context.Background(), strings.NewReader("x")); !errors.Is(err, ErrReadOnly) {
		t.Fatalf("read-only Put: %v", err)
	}
	if err := ro.SetState("pbx", n, StateGood, ""); !errors.Is(err, ErrReadOnly) {
		t.Fatalf("read-only SetState: %v", err)
	}
	if _, err := OpenReadOnly(t.TempDir(), nil); !errors.Is(err, ErrNotFound) {
		t.Fatalf("read-only open of an empty dir: %v", err)
	}

	// After the writer closes, a new writer sees everything.
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.SetState("pbx", n, StateGood, ""); !errors.Is(err, ErrClosed) {
		t.Fatalf("closed: %v", err)
	}
	s2, err := Open(s.Dir(), testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	if g, err := s2.Generation("pbx", n); err != nil || g.State != StateRolledBack {
		t.Fatalf("reopen: %v", err)
	}
}

func TestDamagedMetaIsCorrupt(t *testing.T) {
	s := newTestStore(t)
	n := addGen(t, s, "j", makeIndex(t, s, map[string]string{"a": "a"}), StateGood)
	for _, where := range []struct {
		sub [][]byte
		key []byte
	}{{[][]byte{bktGens}, u64key(n)}, {[][]byte{bktItems}, []byte("a")}} {
		var orig []byte
		mangle(t, s, "j", where.sub, where.key, func(v []byte) []byte {
			orig = append([]byte(nil), v...)
			v[len(v)-10] ^= 1
			return v
		})
		_, err := s.Generation("j", n)
		if !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), `job "j" generation 1`) {
			t.Fatalf("%q: %v", where.sub, err)
		}
		mangle(t, s, "j", where.sub, where.key, func([]byte) []byte { return orig })
	}
	// A damaged change record stops GC before it releases anything: it
	// cannot tell which blob the record refers to.
	addGen(t, s, "j", makeIndex(t, s, map[string]string{"a": "b"}), StateGood)
	addGen(t, s, "j", makeIndex(t, s, map[string]string{"a": "c"}), StateGood)
	mangle(t, s, "j", [][]byte{bktChanges, u64key(n + 1)}, []byte("a"), func(v []byte) []byte { v[5] ^= 1; return v })
	st, err := s.GCStats(context.Background(), map[string]int{"j": 1})
	if !errors.Is(err, ErrCorrupt) || st.Blobs != 0 {
		t.Fatalf("GC over a damaged change record: %+v %v", st, err)
	}
}

func TestJobNames(t *testing.T) {
	for _, job := range []string{"etc", "a.b_c-d", ".", "..", ".hidden", "with space", "slash/inside", "ünï", "%41"} {
		name, err := jobDirName(job)
		if err != nil {
			t.Fatal(err)
		}
		if name == "." || name == ".." || strings.ContainsAny(name, "/ ") || strings.HasPrefix(name, ".") {
			t.Errorf("%q → unsafe %q", job, name)
		}
		back, ok := jobFromDirName(name)
		if !ok || back != job {
			t.Errorf("%q → %q → %q %v", job, name, back, ok)
		}
	}
	for _, name := range []string{"%4", "%zz", "%61", "a b", ".x", ""} {
		if j, ok := jobFromDirName(name); ok {
			t.Errorf("%q accepted as job %q", name, j)
		}
	}
	s := newTestStore(t)
	addGen(t, s, "slash/inside", index.Index{}, StateGood)
	if jobs, _ := s.Jobs(); !reflect.DeepEqual(jobs, []string{"slash/inside"}) {
		t.Fatalf("Jobs: %q", jobs)
	}
}

func TestJobState(t *testing.T) {
	s := newTestStore(t)
	type st struct {
		LastSourceVersion uint64
		Peer              string
	}
	var v st
	if ok, err := s.JobState("j", &v); ok || err != nil {
		t.Fatalf("empty: %v %v", ok, err)
	}
	if err := s.PutJobState("j", st{42, "pbx-b"}); err != nil {
		t.Fatal(err)
	}
	if ok, err := s.JobState("j", &v); !ok || err != nil || v != (st{42, "pbx-b"}) {
		t.Fatalf("got %+v %v %v", v, ok, err)
	}
	mangle(t, s, "j", nil, keyState, func(v []byte) []byte { return v[:len(v)-3] })
	if _, err := s.JobState("j", &v); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("torn state: %v", err)
	}
}

// A generation recorded from its changes costs what it changed: its
// change record holds the one path, the newest index is updated in place,
// and earlier generations still read back complete.
func TestAddGenerationChanges(t *testing.T) {
	s := newTestStore(t)
	ctx := context.Background()
	files := map[string]string{}
	for i := range 200 {
		files[fmt.Sprintf("d/f%03d.conf", i)] = fmt.Sprintf("[f%d]\n", i)
	}
	x1 := makeIndex(t, s, files)
	n1 := addGen(t, s, "j", x1, StateGood)
	x2 := x1.Clone()
	edited, _ := x2.Get("d/f007.conf")
	edited.Hash, edited.Size = put(t, s, []byte("[f7]\nedited\n")), 12
	x2.Set(edited)
	x2.Delete("d/f100.conf")
	g := &Generation{Job: "j", Origin: "pbx-a", State: StateGood, Changed: []string{"d/f007.conf", "d/f100.conf"}}
	n2, err := s.AddGenerationChanges(ctx, g, n1, []index.Item{edited}, []string{"d/f100.conf"})
	if err != nil {
		t.Fatal(err)
	}
	ch, err := s.Changes("j", n2)
	if err != nil || len(ch) != 2 {
		t.Fatalf("Changes: %+v %v", ch, err)
	}
	old7, _ := x1.Get("d/f007.conf")
	if ch[0].Path != "d/f007.conf" || ch[0].Old.Hash != old7.Hash || ch[0].New.Hash != edited.Hash ||
		ch[1].Path != "d/f100.conf" || ch[1].Old == nil || ch[1].New != nil {
		t.Fatalf("Changes: %+v %+v", ch[0], ch[1])
	}
	for n, want := range map[uint64]index.Index{n1: x1, n2: x2} {
		g, err := s.Generation("j", n)
		if err != nil || !index.SameItems(g.Index, want) {
			t.Fatalf("generation %d: %d items, %v", n, g.Index.Len(), err)
		}
	}
	// A base that is not the newest generation is refused.
	if _, err := s.AddGenerationChanges(ctx, &Generation{Job: "j", State: StateGood}, n1, nil, []string{"d/f001.conf"}); !errors.Is(err, ErrConflict) {
		t.Fatalf("stale base: %v", err)
	}
	// A change whose blob is missing is refused, and records nothing.
	missing := edited
	missing.Hash = index.Sum([]byte("never put"))
	if _, err := s.AddGenerationChanges(ctx, &Generation{Job: "j", State: StateGood}, n2, []index.Item{missing}, nil); !errors.Is(err, ErrNotFound) {
		t.Fatalf("missing blob: %v", err)
	}
	if gs, _ := s.Generations("j"); len(gs) != 2 {
		t.Fatalf("%d generations after a refused one", len(gs))
	}
	// The first generation has no change record (it would hold the whole
	// tree and is never needed to rebuild anything).
	if _, err := s.Changes("j", n1); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Changes of the first generation: %v", err)
	}
}

func TestScanStates(t *testing.T) {
	s := newTestStore(t)
	put := func(roots []string, set map[string]string) {
		t.Helper()
		b := map[string][]byte{}
		for p, v := range set {
			b[p] = []byte(v)
		}
		if err := s.PutScanStates("j", roots, b); err != nil {
			t.Fatal(err)
		}
	}
	read := func() map[string]string {
		t.Helper()
		out := map[string]string{}
		if err := s.ScanStates("j", func(p string, v []byte) error { out[p] = string(v); return nil }); err != nil {
			t.Fatal(err)
		}
		return out
	}
	put([]string{""}, map[string]string{"a": "1", "a/x": "2", "a/y/z": "3", "a.b": "4", "a0": "5", "b": "6"})
	// Rescanning a: a/y/z is gone; a.b and a0 (next to a/ in key order)
	// are not below a and stay.
	put([]string{"a"}, map[string]string{"a": "1", "a/x": "7"})
	want := map[string]string{"a": "1", "a/x": "7", "a.b": "4", "a0": "5", "b": "6"}
	if got := read(); !reflect.DeepEqual(got, want) {
		t.Fatalf("after a rescan of a: %v", got)
	}
	mangle(t, s, "j", [][]byte{bktScan}, []byte("b"), func(v []byte) []byte { v[0] ^= 1; return v })
	if err := s.ScanStates("j", func(string, []byte) error { return nil }); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("damaged scan state: %v", err)
	}
}

// Format 1 refused a job state over 16 MiB (the scan state of ~50k files).
func TestJobStateHasNoSmallCap(t *testing.T) {
	s := newTestStore(t)
	big := strings.Repeat("x", 20<<20)
	if err := s.PutJobState("j", big); err != nil {
		t.Fatal(err)
	}
	var got string
	if ok, err := s.JobState("j", &got); !ok || err != nil || got != big {
		t.Fatalf("%v %v %d", ok, err, len(got))
	}
}

// TestAddLinks: the local symlinks a generation's apply replaced are
// recorded with it, survive a reopen, keep the first target recorded at a
// path, and a bad link is refused without changing the record.
func TestAddLinks(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(dir, testLogger(t), WithGCGrace(0))
	if err != nil {
		t.Fatal(err)
	}
	job := "sounds"
	n := addGen(t, s, job, makeIndex(t, s, map[string]string{"a.gsm": "x"}), StateApplying)
	first := []Link{{Path: "moh", Target: "/srv/moh"}, {Path: "conf/custom", Target: "../elsewhere"}}
	if err := s.AddLinks(job, n, first); err != nil {
		t.Fatal(err)
	}
	if err := s.AddLinks(job, n, []Link{{Path: "moh", Target: "/later"}}); err != nil {
		t.Fatal(err)
	}
	for _, bad := range []Link{{Path: "../x", Target: "/t"}, {Path: "x", Target: ""}, {Path: "x", Target: "a\x00b"}, {Path: "x", Target: strings.Repeat("t", 5000)}} {
		if err := s.AddLinks(job, n, []Link{bad}); err == nil {
			t.Errorf("AddLinks(%q -> %q) accepted", bad.Path, bad.Target)
		}
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s, err = Open(dir, testLogger(t), WithGCGrace(0))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	info, err := s.GenerationInfo(job, n)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(info.Links, first) {
		t.Fatalf("links after reopen: %+v; want %+v", info.Links, first)
	}
	g, err := s.Generation(job, n)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(g.Links, first) {
		t.Fatalf("Generation(%d).Links = %+v; want %+v", n, g.Links, first)
	}
	if _, err := s.GenerationInfo(job, n+1); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Info of a missing generation: %v; want ErrNotFound", err)
	}
}

// TestReadIndexSharesVectors: a generation read back holds one copy of
// each distinct version vector, shared by its items (the newest index
// loaded at a start held one slice and node strings per item, ~90 bytes
// each at 100k files), including the items a change record gives back.
func TestReadIndexSharesVectors(t *testing.T) {
	s := newTestStore(t)
	files := map[string]string{}
	for i := range 20 {
		files[fmt.Sprintf("conf/f%02d.conf", i)] = fmt.Sprint("content ", i)
	}
	x := makeIndex(t, s, files) // every file its own vector {pbx-a:3, pbx-b:1}
	n1 := addGen(t, s, "j", x, StateGood)
	x2 := x.Clone()
	it, _ := x2.Get("conf/f00.conf")
	it.Hash, it.Size, it.Version = put(t, s, []byte("new")), 3, it.Version.Bump("pbx-a")
	x2.Set(it)
	addGen(t, s, "j", x2, StateGood)
	for _, n := range []uint64{n1, n1 + 1} {
		g, err := s.Generation("j", n)
		if err != nil {
			t.Fatal(err)
		}
		byVector := map[string]index.Vector{}
		for p, it := range g.Index.All() {
			if len(it.Version) == 0 {
				continue
			}
			key := fmt.Sprint(it.Version)
			if first, ok := byVector[key]; ok && &first[0] != &it.Version[0] {
				t.Fatalf("generation %d: %s has its own copy of %v", n, p, it.Version)
			}
			byVector[key] = it.Version
		}
		if want := map[uint64]int{n1: 1, n1 + 1: 2}[n]; len(byVector) != want {
			t.Fatalf("generation %d: %d distinct vectors, want %d", n, len(byVector), want)
		}
	}
}

// TestRecordFlushesPendingFirst: a record with many blobs pending (an
// initial sync's last batch) makes them durable in a transaction before
// its own, so that bbolt never holds the nodes of both at once (the
// source's peak heap of a 100,000-file initial sync: ~15-21 MiB of nodes
// beside the 7 MiB of changes); one with a blob or two pending records
// them in its own transaction, with no extra commit.
func TestRecordFlushesPendingFirst(t *testing.T) {
	s := newTestStore(t)
	ctx := context.Background()
	record := func(job string, files map[string]string) int {
		t.Helper()
		x := makeIndex(t, s, files)
		flushing := -1
		g := &Generation{Job: job, Origin: "pbx-a", State: StateGood, Index: x}
		if _, err := s.addGeneration(ctx, g, 0, false, func(items *bolt.Bucket) (changeList, error) {
			flushing = len(s.flushing) // the batch the record's transaction makes durable
			return diffItems(ctx, items, x)
		}); err != nil {
			t.Fatal(err)
		}
		back, err := s.Generation(job, g.Number)
		if err != nil || back.Index.Len() != x.Len() {
			t.Fatalf("%s: read back: %v", job, err)
		}
		for it := range x.Items() {
			if it.Kind == index.KindFile && !s.Has(it.Hash) {
				t.Fatalf("%s: blob of %s missing", job, it.Path)
			}
		}
		return flushing
	}
	many := map[string]string{}
	for i := range 4 * flushFirstBlobs {
		many[fmt.Sprintf("conf/f%05d.conf", i)] = fmt.Sprint("content ", i)
	}
	if n := record("big", many); n != 0 {
		t.Errorf("the record's transaction flushed %d of %d pending blobs; want them flushed before it", n, len(many))
	}
	if n := record("small", map[string]string{"conf/one.conf": "one"}); n != 1 {
		t.Errorf("the record of one new blob flushed %d blobs in its transaction; want it (no extra commit)", n)
	}
}
