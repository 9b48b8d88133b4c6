package syncer

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"reflect"
	"testing"
	"time"

	"pbxsync/hostmon"
	"pbxsync/internal/config"
	"pbxsync/internal/index"
	"pbxsync/internal/store"
	"pbxsync/internal/testwait"
)

// The scan state is saved per path: a save after a one-path rescan writes
// that path only, a full scan writes what changed, and a restart reads
// back exactly what was saved — with no size cap (format 1 kept it as one
// JSON value of at most 16 MiB, about 50k files).
func TestScanStateSavedPerPath(t *testing.T) {
	t.Parallel()
	newJob := scanStateJobs(t)
	states := map[string]hostmon.FileState{}
	for i := range 3000 {
		p := fmt.Sprintf("d%d/f%04d.conf", i%10, i)
		states[p] = hostmon.FileState{Item: index.Item{Path: p, Kind: index.KindFile, Size: int64(i), Mode: 0o640, MTime: int64(i) << 20,
			Hash: index.Sum([]byte(p))}, Dev: 42, Inode: uint64(1000 + i), CTime: int64(i) << 21}
	}
	for i := range 10 {
		p := fmt.Sprintf("d%d", i)
		states[p] = hostmon.FileState{Item: index.Item{Path: p, Kind: index.KindDir, Mode: 0o755}}
	}
	j := newJob()
	j.noteScanned(nil, states, nil)
	j.states = hostmon.NewStates(states)
	j.save()
	if len(j.scanDirty) != 0 {
		t.Fatalf("dirty after save: %d", len(j.scanDirty))
	}

	// A rescan of one file, and of one directory that lost a file.
	after := map[string]hostmon.FileState{}
	for p, s := range states {
		after[p] = s
	}
	edit := after["d3/f0003.conf"]
	edit.Hash, edit.CTime = index.Sum([]byte("edited")), 7
	after[edit.Path] = edit
	delete(after, "d5/f0005.conf")
	j.noteScanned(states, after, []string{"d3/f0003.conf", "d5"})
	if len(j.scanDirty) != 2 {
		t.Fatalf("dirty paths %v", j.scanDirty)
	}
	j.states = hostmon.NewStates(after)
	j.save()

	j2 := newJob()
	loaded, err := j2.loadScan()
	if err != nil {
		t.Fatal(err)
	}
	got := loaded.Map()
	if !reflect.DeepEqual(got, after) {
		t.Fatalf("loaded %d states, want %d; edit %+v", len(got), len(after), got[edit.Path])
	}
	// A full scan that finds the same tree marks nothing.
	j2.noteScanned(got, after, nil)
	if len(j2.scanDirty) != 0 {
		t.Fatalf("an unchanged full scan marked %d paths", len(j2.scanDirty))
	}
}

// TestScanPathsMarksWhatChanged: the scan state changes in place, so what
// a rescan changed must be noted from the scan's delta: a full rescan
// after an edit marks exactly the edited path, one after nothing changed
// marks nothing, and a restart reads back what the tree holds. (Comparing
// the state before and after, as the first per-path save did, compared the
// map with itself once scans updated it in place, and saved nothing.)
func TestScanPathsMarksWhatChanged(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	root := filepath.Join(dir, "tree")
	for i := range 20 {
		p := filepath.Join(root, fmt.Sprintf("d%d", i%4), fmt.Sprintf("f%02d.conf", i))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(p), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	st, err := store.Open(filepath.Join(dir, "store"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	newJob := func() *job {
		return &job{a: &Agent{store: st}, cfg: config.Job{Name: "j", Path: root}, log: slog.New(slog.DiscardHandler)}
	}
	ctx := context.Background()
	j := newJob()
	if err := j.scanAll(ctx); err != nil {
		t.Fatal(err)
	}
	// the first scan notes the directories, which stand for the files
	// below them (a map of every path cost the source 3.6 MiB at 100k)
	if len(j.scanDirty) != 4 || j.states.Len() != 24 || !j.scanDirty["d0"] || !j.scanDirty["d3"] {
		t.Fatalf("first scan: %d states, marked %v; want 24 states and the 4 directories", j.states.Len(), j.scanDirty)
	}
	j.save()
	if got, err := newJob().loadScan(); err != nil || !reflect.DeepEqual(got.Map(), j.states.Map()) {
		t.Fatalf("after the first scan's save a restart loads %d states (%v); want %d", got.Len(), err, j.states.Len())
	}
	// A file changed less than a second (hostmon's racy window) before a
	// scan is recorded untrusted, and trusted by a later scan: a real
	// change of its scan state, which a rescan marks. Rescan until every
	// file is trusted, so that what the rescans below mark is what was
	// edited, whenever a loaded machine runs them.
	testwait.Eventually(t, "a scan that trusts every file", func() error {
		if err := j.scanAll(ctx); err != nil {
			return err
		}
		for p, st := range j.states.All() {
			if st.Kind == index.KindFile && st.CTime == 0 {
				return fmt.Errorf("%s is not trusted yet", p)
			}
		}
		return nil
	})
	j.save()
	if err := j.scanAll(ctx); err != nil {
		t.Fatal(err)
	}
	if len(j.scanDirty) != 0 {
		t.Fatalf("a rescan of an unchanged tree marked %v", j.scanDirty)
	}
	edited := filepath.Join(root, "d1", "f05.conf")
	if err := os.WriteFile(edited, []byte("edited, and longer than before"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := j.scanAll(ctx); err != nil {
		t.Fatal(err)
	}
	if len(j.scanDirty) != 1 || !j.scanDirty["d1/f05.conf"] {
		t.Fatalf("a full rescan after one edit marked %v; want d1/f05.conf", j.scanDirty)
	}
	j.save()
	got, err := newJob().loadScan()
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got.Map(), j.states.Map()) {
		t.Fatalf("a restart loads %+v; want %+v", got.Map()["d1/f05.conf"], j.states.Map()["d1/f05.conf"])
	}
}

// TestLargeGenerationSavesScanStateAtOnce: the tick after a large
// generation saves the scan state of every path it touched then, beside
// the job's loop, not saveEvery later on the loop (when the first edits
// after a big initial sync waited behind the write of 100k paths'
// states); a small one waits as before.
func TestLargeGenerationSavesScanStateAtOnce(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	root := filepath.Join(dir, "tree")
	if err := os.MkdirAll(root, 0o755); err != nil {
		t.Fatal(err)
	}
	for i := range 5 {
		if err := os.WriteFile(filepath.Join(root, fmt.Sprintf("f%d.conf", i)), []byte("x"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	st, err := store.Open(filepath.Join(dir, "store"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	j := &job{a: &Agent{store: st}, cfg: config.Job{Name: "j", Path: root}, log: slog.New(slog.DiscardHandler), isSource: false}
	ctx := context.Background()
	if err := j.scanAll(ctx); err != nil {
		t.Fatal(err)
	}
	j.dirty, j.lastSave = true, time.Now()
	saved := func() int {
		n := 0
		if err := st.ScanStates("j", func(string, []byte) error { n++; return nil }); err != nil {
			t.Fatal(err)
		}
		return n
	}
	j.noteGeneration(largeGeneration - 1)
	j.onTick(ctx)
	if n := saved(); n != 0 || len(j.scanDirty) == 0 {
		t.Fatalf("a small generation's tick saved %d scan states", n)
	}
	j.noteGeneration(largeGeneration)
	j.onTick(ctx)
	if j.scanSaving == nil {
		t.Fatal("the tick after a large generation started no save")
	}
	if err := j.finishScanSave(); err != nil { // it runs beside the loop
		t.Fatal(err)
	}
	if n := saved(); n != 5 || len(j.scanDirty) != 0 {
		t.Fatalf("the tick after a large generation saved %d scan states (%d paths still to save); want 5", n, len(j.scanDirty))
	}
}

// TestScanSaveInSteps: a large save (every path of a first scan) is
// written in steps of at most scanSaveChunk paths, each encoded on the
// loop when the one before is written (the writer hands the loop the next
// one through its inbox): no step copies or encodes the whole scan state.
// Changes made between steps end up saved as they are at the end.
func TestScanSaveInSteps(t *testing.T) {
	t.Parallel()
	newJob := scanStateJobs(t)
	states := map[string]hostmon.FileState{}
	const dirs, perDir = 12, 1000
	for i := range dirs * perDir {
		p := fmt.Sprintf("d%02d/f%05d.conf", i%dirs, i)
		states[p] = hostmon.FileState{Item: index.Item{Path: p, Kind: index.KindFile, Size: int64(i), Mode: 0o640,
			Hash: index.Sum([]byte(p))}, Dev: 1, Inode: uint64(i), CTime: int64(i)}
	}
	for i := range dirs {
		p := fmt.Sprintf("d%02d", i)
		states[p] = hostmon.FileState{Item: index.Item{Path: p, Kind: index.KindDir, Mode: 0o755}}
	}
	j := newJob()
	j.states = hostmon.NewStates(states)
	j.noteScanned(nil, states, nil)

	j.saveScanInBackground()
	steps, from := 0, 0
	for j.scanSave != nil {
		s := j.scanSave
		if len(s.roots) != dirs {
			t.Fatalf("%d roots; want the %d directories (the files below them are saved with them)", len(s.roots), dirs)
		}
		if n := s.first[s.next] - s.first[from]; n > scanSaveChunk {
			t.Fatalf("a step of %d paths; want at most %d", n, scanSaveChunk)
		}
		from = s.next
		steps++
		if steps == 2 { // changes between steps
			edit, _ := j.states.Get("d00/f00000.conf")
			edit.Size = 99
			j.states.Set(edit)
			j.states.Delete("d11/f00011.conf")
			j.noteDirty([]string{"d00/f00000.conf", "d11/f00011.conf"})
		}
		e := <-j.inbox // the writer's hand-over
		e.do(context.Background())
	}
	if want := dirs / (scanSaveChunk / (perDir + 1)); steps != want {
		t.Fatalf("%d steps; want %d of at most %d paths", steps, want, scanSaveChunk)
	}
	if err := j.saveScan(); err != nil {
		t.Fatal(err)
	}
	got, err := newJob().loadScan()
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got.Map(), j.states.Map()) {
		t.Fatalf("loaded %d states (edit %+v), want %d", got.Len(), got.Map()["d00/f00000.conf"], j.states.Len())
	}
}

// scanStateJobs returns a maker of jobs "j" without a tree that share one
// store, for the tests of saving and loading scan states.
func scanStateJobs(t *testing.T) func() *job {
	st, err := store.Open(filepath.Join(t.TempDir(), "store"), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return func() *job {
		return &job{a: &Agent{store: st}, cfg: config.Job{Name: "j"}, log: slog.New(slog.DiscardHandler), inbox: make(chan event, 4)}
	}
}

// TestNewPathRoots: the first scan's paths are noted as the directories
// they lie in, except a directory with more than scanSaveChunk paths
// below it (its save would be one step of all of them), whose paths are
// noted themselves.
func TestNewPathRoots(t *testing.T) {
	t.Parallel()
	states := map[string]hostmon.FileState{}
	dir := func(p string) {
		states[p] = hostmon.FileState{Item: index.Item{Path: p, Kind: index.KindDir, Mode: 0o755}}
	}
	file := func(p string) {
		states[p] = hostmon.FileState{Item: index.Item{Path: p, Kind: index.KindFile, Mode: 0o644, Hash: index.Sum([]byte(p))}}
	}
	dir("big")
	for i := range scanSaveChunk + 1 {
		file(fmt.Sprintf("big/f%05d", i))
	}
	dir("big/sub")
	file("big/sub/x")
	dir("a")
	dir("a/b")
	file("a/b/y")
	file("a/z")
	file("top")
	j := &job{states: hostmon.NewStates(states)}
	var paths []string
	for p := range states {
		paths = append(paths, p)
	}
	got := j.newPathRoots(paths)
	if len(got) != scanSaveChunk+1+4 {
		t.Fatalf("%d roots; want the %d files of big, big, big/sub, a and top", len(got), scanSaveChunk+1)
	}
	in := map[string]bool{}
	for _, p := range got {
		in[p] = true
	}
	for _, p := range []string{"big", "big/sub", "a", "top", "big/f00000"} {
		if !in[p] {
			t.Errorf("%s not noted", p)
		}
	}
	for _, p := range []string{"big/sub/x", "a/b", "a/b/y", "a/z"} {
		if in[p] {
			t.Errorf("%s noted beside the directory above it", p)
		}
	}
}

// TestNewFilesOf: an apply's new files are counted from the first of
// them, and a directory the apply makes stands for the new paths below it
// when they are at most scanSaveChunk; a new file in a directory the tree
// has, a replaced file and a file under a directory with more new paths
// below it are noted on their own.
func TestNewFilesOf(t *testing.T) {
	t.Parallel()
	file := func(p, content string) index.Item {
		return index.Item{Path: p, Kind: index.KindFile, Mode: 0o644, Size: int64(len(content)), Hash: index.Sum([]byte(content))}
	}
	dir := func(p string) index.Item { return index.Item{Path: p, Kind: index.KindDir, Mode: 0o755} }
	have := index.Of(dir("old"), file("old/keep", "k"), file("old/change", "1"))
	want := index.Of(dir("old"), file("old/keep", "k"), file("old/change", "2"), file("old/new", "n"),
		dir("a"), dir("a/b"), file("a/b/y", "y"), file("a/z", "z"),
		dir("big"), dir("big/sub"), file("big/sub/x", "x"), file("top", "t"))
	for i := range scanSaveChunk + 1 {
		want.Set(file(fmt.Sprintf("big/f%05d", i), fmt.Sprint(i)))
	}
	r := newFilesOf(Plan(have, want))
	if wantN := 5 + scanSaveChunk + 1; r.n != wantN || r.first != "a/b/y" {
		t.Errorf("%d new files from %q; want %d from a/b/y", r.n, r.first, wantN)
	}
	if !reflect.DeepEqual(r.dirs, map[string]bool{"a": true, "a/b": true, "big/sub": true}) {
		t.Errorf("directories standing for their new paths: %v; want a, a/b and big/sub", r.dirs)
	}
	for p, covered := range map[string]bool{"a/b/y": true, "a/z": true, "big/sub/x": true, "big/f00000": false, "old/new": false, "top": false} {
		if r.covers(p) != covered {
			t.Errorf("covers(%s) = %v, want %v", p, !covered, covered)
		}
	}
	if r := newFilesOf(Plan(have, have)); r.n != 0 || r.dirs != nil || r.covers("old/keep") {
		t.Errorf("no change: %+v", r)
	}
}
