package hostmon

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"
	"unsafe"

	"github.com/fsnotify/fsnotify"

	"pbxsync/internal/testwait"
)

// testDebounce is the watchers' debounce in these tests.
const testDebounce = 250 * time.Millisecond

// startWatcher runs a Watcher on root until the test ends.
func startWatcher(t *testing.T, root string, f *Filter, debounce time.Duration) *Watcher {
	t.Helper()
	log, logs := newTestLogger()
	w, err := NewWatcher(root, f, debounce, log)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
		if _, open := <-w.Changes(); open {
			t.Error("Changes not closed after Run returned")
		}
		if t.Failed() {
			t.Logf("watcher log:\n%s", logs)
		}
	})
	return w
}

// collect gathers Changes until every path of want has been reported (the
// union of Changes). It returns the Changes seen. testwait.Limit bounds a
// hang; how soon a Change comes is not what these tests assert.
func collect(t *testing.T, w *Watcher, want ...string) []Change {
	t.Helper()
	within := testwait.Limit()
	deadline := time.NewTimer(within)
	defer deadline.Stop()
	seen := map[string]bool{}
	var got []Change
	for {
		missing := []string{}
		for _, p := range want {
			if !seen[p] {
				missing = append(missing, p)
			}
		}
		if len(missing) == 0 {
			return got
		}
		select {
		case c := <-w.Changes():
			checkChange(t, c)
			got = append(got, c)
			for _, p := range paths([]Change{c}) {
				seen[p] = true
			}
		case <-deadline.C:
			t.Fatalf("within %v: missing %q; got %+v", within, missing, got)
		}
	}
}

// checkChange asserts the Change invariants: sorted, deduplicated paths.
func checkChange(t *testing.T, c Change) {
	t.Helper()
	if !sort.StringsAreSorted(c.Paths) || len(slices.Compact(slices.Clone(c.Paths))) != len(c.Paths) {
		t.Errorf("paths not sorted and deduplicated: %q", c.Paths)
	}
	if c.Rescan {
		t.Errorf("unexpected Rescan: %+v", c)
	}
}

func paths(cs []Change) []string {
	var out []string
	for _, c := range cs {
		out = append(out, c.Paths...)
		out = append(out, c.Shallow...)
	}
	sort.Strings(out)
	return slices.Compact(out)
}

func TestWatcherReportsChanges(t *testing.T) {
	root := t.TempDir()
	writeFile(t, root, "modify.conf", "old", 0o644)
	writeFile(t, root, "delete.conf", "x", 0o644)
	writeFile(t, root, "chmod.conf", "x", 0o644)
	writeFile(t, root, "sub/old-name.conf", "x", 0o644)
	writeFile(t, root, "olddir/inner/f.conf", "x", 0o644)
	w := startWatcher(t, root, nil, testDebounce)
	abs := func(rel string) string { return filepath.Join(root, filepath.FromSlash(rel)) }

	steps := []struct {
		name string
		do   func() error
		want []string
	}{
		{"create", func() error { return os.WriteFile(abs("new.conf"), []byte("n"), 0o644) }, []string{"new.conf"}},
		{"modify", func() error { return os.WriteFile(abs("modify.conf"), []byte("new"), 0o644) }, []string{"modify.conf"}},
		{"delete", func() error { return os.Remove(abs("delete.conf")) }, []string{"delete.conf"}},
		{"chmod", func() error { return os.Chmod(abs("chmod.conf"), 0o600) }, []string{"chmod.conf"}},
		{"chmod dir", func() error { return os.Chmod(abs("sub"), 0o700) }, []string{"sub"}},
		{"rename file", func() error { return os.Rename(abs("sub/old-name.conf"), abs("new-name.conf")) },
			[]string{"sub/old-name.conf", "new-name.conf"}},
		{"new nested dirs", func() error {
			if err := os.MkdirAll(abs("a/b/c"), 0o755); err != nil {
				return err
			}
			return os.WriteFile(abs("a/b/c/deep.conf"), []byte("d"), 0o644)
		}, []string{"a", "a/b", "a/b/c", "a/b/c/deep.conf"}},
		{"write in new dir", func() error { return os.WriteFile(abs("a/b/c/later.conf"), []byte("l"), 0o644) },
			[]string{"a/b/c/later.conf"}},
		{"rename dir", func() error { return os.Rename(abs("olddir"), abs("newdir")) },
			[]string{"olddir", "newdir", "newdir/inner", "newdir/inner/f.conf"}},
		{"write in renamed dir", func() error { return os.WriteFile(abs("newdir/inner/g.conf"), []byte("g"), 0o644) },
			[]string{"newdir/inner/g.conf"}},
		{"remove dir tree", func() error { return os.RemoveAll(abs("a")) }, []string{"a", "a/b", "a/b/c"}},
	}
	for _, s := range steps {
		if err := s.do(); err != nil {
			t.Fatalf("%s: %v", s.name, err)
		}
		got := collect(t, w, s.want...)
		if s.name == "chmod dir" {
			// a directory's own attributes: rescanned without what is below it
			var shallow, deep []string
			for _, c := range got {
				shallow, deep = append(shallow, c.Shallow...), append(deep, c.Paths...)
			}
			if !slices.Contains(shallow, "sub") || slices.Contains(deep, "sub") {
				t.Errorf("chmod of a directory: shallow %v, paths %v; want sub shallow only", shallow, deep)
			}
		}
		if s.name == "write in renamed dir" {
			for _, p := range paths(got) {
				if strings.HasPrefix(p, "olddir/") {
					t.Errorf("event in the renamed directory reported under its old name %q", p)
				}
			}
		}
	}
}

func TestWatcherDirectoryMovedIn(t *testing.T) {
	root := t.TempDir()
	outside := t.TempDir()
	writeFile(t, outside, "tree/x/y.conf", "y", 0o644)
	w := startWatcher(t, root, nil, testDebounce)
	if err := os.Rename(filepath.Join(outside, "tree"), filepath.Join(root, "tree")); err != nil {
		t.Fatal(err)
	}
	collect(t, w, "tree", "tree/x", "tree/x/y.conf")
	// The moved-in tree is watched.
	writeFile(t, root, "tree/x/z.conf", "z", 0o644)
	collect(t, w, "tree/x/z.conf")

	// Moved out: its events stop.
	if err := os.Rename(filepath.Join(root, "tree"), filepath.Join(outside, "gone")); err != nil {
		t.Fatal(err)
	}
	collect(t, w, "tree")
	writeFile(t, outside, "gone/x/after.conf", "a", 0o644)
	writeFile(t, root, "sentinel", "s", 0o644)
	got := collect(t, w, "sentinel")
	for _, p := range paths(got) {
		if strings.Contains(p, "after") {
			t.Errorf("change outside the root reported as %q", p)
		}
	}
}

func TestWatcherIgnoresExcluded(t *testing.T) {
	root := t.TempDir()
	writeFile(t, root, "tmp/scratch", "s", 0o644)
	f, err := NewFilter(nil, []string{"tmp", "*.bak"})
	if err != nil {
		t.Fatal(err)
	}
	w := startWatcher(t, root, f, testDebounce)
	if slices.Contains(w.watchList(), "tmp") {
		t.Error("excluded directory is watched")
	}
	writeFile(t, root, "tmp/scratch", "changed", 0o644)
	writeFile(t, root, "tmp/new", "n", 0o644)
	writeFile(t, root, "x.bak", "b", 0o644)
	writeFile(t, root, ".pbxsync-stage/x.conf", "staged", 0o644)
	writeFile(t, root, ".sip.conf.swp", "swap", 0o644)
	writeFile(t, root, "4913", "", 0o644)
	writeFile(t, root, "astdb.sqlite3", "db", 0o644)
	// Events are processed in order: once the sentinel is reported, the
	// excluded writes before it have been seen and dropped.
	writeFile(t, root, "sentinel", "s", 0o644)
	got := collect(t, w, "sentinel")
	if p := paths(got); !slices.Equal(p, []string{"sentinel"}) {
		t.Errorf("reported %q, want only the sentinel", p)
	}
}

func TestWatcherIncludeFilter(t *testing.T) {
	root := t.TempDir()
	f, err := NewFilter([]string{"*.conf"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	w := startWatcher(t, root, f, testDebounce)
	writeFile(t, root, "notes.txt", "n", 0o644)
	writeFile(t, root, "d/e/sip.conf", "s", 0o644)
	got := collect(t, w, "d", "d/e", "d/e/sip.conf")
	if slices.Contains(paths(got), "notes.txt") {
		t.Error("notes.txt reported although not included")
	}
}

func TestWatcherBurst(t *testing.T) {
	root := t.TempDir()
	w := startWatcher(t, root, nil, testDebounce)
	fh, err := os.Create(filepath.Join(root, "burst.conf"))
	if err != nil {
		t.Fatal(err)
	}
	for i := range 1000 {
		if _, err := fh.WriteString(strconv.Itoa(i) + "\n"); err != nil {
			t.Fatal(err)
		}
	}
	fh.Close()
	for i := range 100 {
		writeFile(t, root, fmt.Sprintf("many/%03d.conf", i), "x", 0o644)
	}
	want := []string{"burst.conf", "many"}
	for i := range 100 {
		want = append(want, fmt.Sprintf("many/%03d.conf", i))
	}
	got := collect(t, w, want...)
	// Then quiet: nothing more should trickle in beyond what was gathered.
	quiet := time.After(3 * testDebounce)
loop:
	for {
		select {
		case c := <-w.Changes():
			checkChange(t, c)
			got = append(got, c)
		case <-quiet:
			break loop
		}
	}
	if len(got) > 3 {
		t.Errorf("1100 writes gave %d Changes, want at most 3", len(got))
	}
}

func TestWatcherContinuousWritesStillReported(t *testing.T) {
	root := t.TempDir()
	const debounce = 50 * time.Millisecond
	w := startWatcher(t, root, nil, debounce)
	fh, err := os.Create(filepath.Join(root, "growing.wav"))
	if err != nil {
		t.Fatal(err)
	}
	defer fh.Close()
	// Write every debounce/5, never quiet for a whole debounce, until the
	// first Change comes (or testwait.Limit, a hang): a watcher that waited
	// for quiet would report only after the writes stopped.
	var stopped atomic.Bool
	stop, done := make(chan struct{}), make(chan struct{})
	start := time.Now()
	go func() {
		defer close(done)
		tick := time.NewTicker(debounce / 5)
		defer tick.Stop()
		for time.Since(start) < testwait.Limit() {
			fh.WriteString("data")
			select {
			case <-stop:
				return
			case <-tick.C:
			}
		}
		stopped.Store(true)
	}()
	c := testwait.Chan(t, "a Change during continuous writes", w.Changes())
	close(stop)
	<-done
	if stopped.Load() {
		t.Fatalf("first Change came only after the writes stopped (%v)", time.Since(start))
	}
	if !slices.Contains(c.Paths, "growing.wav") {
		t.Fatalf("Change %q lacks growing.wav", c.Paths)
	}
	t.Logf("first Change after %v of continuous writing", time.Since(start))
}

func TestWatcherOverflowAsksForRescan(t *testing.T) {
	// The watcher needs inotify on every machine pbxsync runs on, so a
	// machine without it fails here rather than skipping.
	limit, err := os.ReadFile("/proc/sys/fs/inotify/max_queued_events")
	if err != nil {
		t.Fatal("no inotify:", err)
	}
	n, err := strconv.Atoi(strings.TrimSpace(string(limit)))
	if err != nil || n > 200000 {
		t.Fatalf("max_queued_events %q is too large to overflow in a test; lower it (sysctl fs.inotify.max_queued_events)", limit)
	}
	root := t.TempDir()
	writeFile(t, root, "f0", "", 0o644)
	writeFile(t, root, "f1", "", 0o644)
	log, _ := newTestLogger()
	w, err := NewWatcher(root, nil, testDebounce, log)
	if err != nil {
		t.Fatal(err)
	}
	// Nobody reads yet: fill fsnotify's buffers and the kernel queue.
	// Alternate between two files: the kernel merges an event identical to
	// the last one queued.
	for i := range 2*n + eventBuffer + 10000 {
		p := filepath.Join(root, "f"+strconv.Itoa(i%2))
		if err := os.Chmod(p, 0o600|os.FileMode(i/2%2)<<2); err != nil {
			t.Fatal(err)
		}
	}
	// A directory created while events are being lost must still end up
	// watched after the rescan.
	mkdir(t, root, "lost", 0o755)

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	}()
	deadline := time.After(testwait.Limit())
	for rescan := false; !rescan; {
		select {
		case c := <-w.Changes():
			rescan = c.Rescan
		case <-deadline:
			t.Fatal("no Rescan after overflowing the event queue")
		}
	}
	writeFile(t, root, "lost/inside.conf", "x", 0o644)
	deadline = time.After(testwait.Limit())
	for {
		select {
		case c := <-w.Changes():
			if slices.Contains(c.Paths, "lost/inside.conf") {
				return
			}
		case <-deadline:
			t.Fatal("directory created during the overflow is not watched")
		}
	}
}

func TestNewWatcherErrors(t *testing.T) {
	root := t.TempDir()
	writeFile(t, root, "file", "", 0o644)
	if _, err := NewWatcher(filepath.Join(root, "missing"), nil, testDebounce, nil); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing root: %v", err)
	}
	if _, err := NewWatcher(filepath.Join(root, "file"), nil, testDebounce, nil); err == nil || !strings.Contains(err.Error(), "not a directory") {
		t.Errorf("file root: %v", err)
	}
	if _, err := NewWatcher(root, nil, 0, nil); err == nil {
		t.Error("zero debounce accepted")
	}
	w, err := NewWatcher(root, nil, testDebounce, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := w.Run(ctx); err != nil {
		t.Errorf("Run with a done context: %v", err)
	}
	if err := w.Run(context.Background()); err == nil {
		t.Error("second Run accepted")
	}
	if err := w.Close(); err != nil {
		t.Errorf("Close after Run: %v", err)
	}
}

// watchList returns the watched directories relative to the root, from
// fsnotify's own list.
func (w *Watcher) watchList() []string {
	var out []string
	for _, p := range w.fsw.WatchList() {
		if r, ok := w.rel(p); ok {
			out = append(out, r)
		}
	}
	sort.Strings(out)
	return out
}

// TestBatchLetsGoOfABurst: a batch that gathered the paths of a burst (an
// apply of 100,000 files seen by the target's own watcher) holds no table
// of that size once flushed; a cleared map would keep ~2.6 MB for the
// agent's lifetime.
func TestBatchLetsGoOfABurst(t *testing.T) {
	const n = 100000
	paths := make([]string, n)
	for i := range paths {
		paths[i] = fmt.Sprintf("site%03d/endpoint%05d.conf", i%100, i)
	}
	heap := func() uint64 {
		runtime.GC()
		var m runtime.MemStats
		runtime.ReadMemStats(&m)
		return m.HeapAlloc
	}
	h0 := heap()
	b := newBatch(time.Hour)
	defer b.timer.Stop()
	for _, p := range paths {
		b.add(p)
	}
	// the paths of each directory past coalesceAt: the directory
	if c := b.flush(nil); len(c.Paths) != 100 || c.Paths[0] != "site000" || c.Paths[99] != "site099" {
		t.Fatalf("flushed %d paths (%q ...), want the 100 directories", len(c.Paths), c.Paths[:min(3, len(c.Paths))])
	}
	b.add(paths[0]) // the next batch
	held := int64(heap()) - int64(h0)
	runtime.KeepAlive(b)
	runtime.KeepAlive(paths)
	if held > 256<<10 {
		t.Fatalf("the batch holds %d bytes after flushing %d paths, want at most 256 KiB", held, n)
	}
}

// TestBatchCoalescesADirectory: past coalesceAt paths of one directory,
// the directory stands for them and for what changes below it later,
// merged from an undelivered Change too; other directories and the root's
// entries keep their paths.
func TestBatchCoalescesADirectory(t *testing.T) {
	b := newBatch(time.Hour)
	defer b.timer.Stop()
	var want []string
	for i := range coalesceAt + 40 {
		b.add(fmt.Sprintf("a/b/f%04d.conf", i))
	}
	b.add("a/b/sub/deep.conf") // below the directory: covered
	b.add("a/other.conf")
	for i := range 10 {
		b.add(fmt.Sprintf("c/f%d.conf", i))
		want = append(want, fmt.Sprintf("c/f%d.conf", i))
	}
	b.add("extensions.conf")
	want = append(want, "a/b", "a/other.conf", "extensions.conf")
	slices.Sort(want)
	undelivered := &Change{Paths: []string{"a/b/f9999.conf", "d/x.conf"}}
	want = append(want, "d/x.conf")
	slices.Sort(want)
	c := b.flush(undelivered)
	if !slices.Equal(c.Paths, want) {
		t.Fatalf("flushed %q, want %q", c.Paths, want)
	}
	if len(b.paths) != 0 || b.whole != nil || b.perDir != nil {
		t.Fatal("the batch keeps what it flushed")
	}
	// the next batch starts over: a few paths of that directory are paths
	b.add("a/b/f0001.conf")
	if c := b.flush(nil); !slices.Equal(c.Paths, []string{"a/b/f0001.conf"}) {
		t.Fatalf("next batch flushed %q", c.Paths)
	}
}

// TestBatchKeepsNoEventName: a path in the batch is a string of its own,
// not part of the event's absolute name, which it would keep alive (an
// apply's 100,000 renames wait in the batch while the job is busy).
func TestBatchKeepsNoEventName(t *testing.T) {
	root := t.TempDir()
	writeFile(t, root, "site000/endpoint00000.conf", "x", 0o644)
	w, err := NewWatcher(root, nil, testDebounce, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	b := newBatch(time.Hour)
	defer b.timer.Stop()
	name := filepath.Join(root, "site000", "endpoint00000.conf")
	w.handle(fsnotify.Event{Name: name, Op: fsnotify.Write}, b)
	if len(b.paths) != 1 {
		t.Fatalf("batch holds %v, want the one path", b.paths)
	}
	lo := uintptr(unsafe.Pointer(unsafe.StringData(name)))
	for p := range b.paths {
		if at := uintptr(unsafe.Pointer(unsafe.StringData(p))); at >= lo && at < lo+uintptr(len(name)) {
			t.Fatalf("the batch's path %q is part of the event's name %q", p, name)
		}
	}
}
