package hostmon

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/fsnotify/fsnotify"

	"pbxsync/internal/index"
)

// maxDelayFactor bounds how long a batch may be held back: a Change goes
// out at most maxDelayFactor×debounce after the first event of its batch,
// even if events never stop (a file written continuously).
const maxDelayFactor = 10

// eventBuffer is the capacity of the channel between fsnotify's reader and
// Run, so that short pauses in Run (walking a new directory) do not leave
// events waiting in the kernel queue.
const eventBuffer = 1024

// Change is a batch of changed paths reported by a Watcher.
type Change struct {
	// Paths are relative to the job root, slash-separated, deduplicated and
	// sorted. A path may be a file or a directory, and may no longer exist
	// (deleted, or the old name of a rename); ScanPaths sorts that out.
	Paths []string
	// Shallow are directories, not in Paths, that were reported for a
	// change of their own attributes only (chmod, times: the mtime an
	// apply sets back after writing into them): rescanned without what
	// lies below them (WithShallow), whose changes come as paths of their
	// own. Deduplicated and sorted.
	Shallow []string
	// Rescan says events were lost (kernel queue overflow, watch error), so
	// Paths may be incomplete: the caller must rescan the whole tree.
	Rescan bool
}

// Watcher watches a job root recursively with fsnotify and reports
// debounced Changes. Directories created later are watched as they appear;
// directories the Filter excludes are never watched.
//
// Create the Watcher before the initial Scan: its watches are in place when
// NewWatcher returns, so any change that the scan might miss is reported
// once Run starts.
type Watcher struct {
	root     string // absolute, clean
	f        *Filter
	debounce time.Duration
	log      *slog.Logger
	fsw      *fsnotify.Watcher
	out      chan Change

	// watched holds the relative paths of the directories watched ("" is
	// the root). NewWatcher fills it, then only Run's goroutine uses it.
	watched map[string]bool

	running   atomic.Bool
	closed    atomic.Bool
	closeOnce sync.Once
	closeErr  error
}

// NewWatcher starts watching root and every directory below it that f
// admits (a nil f admits everything but the built-in excludes). Changes are
// gathered until debounce has passed without events, but for at most
// 10×debounce. It fails if root is not a directory or a watch cannot be
// added (for instance when fs.inotify.max_user_watches is exhausted).
// Call Run to receive Changes, or Close if Run is never called.
func NewWatcher(root string, f *Filter, debounce time.Duration, log *slog.Logger) (*Watcher, error) {
	if debounce <= 0 {
		return nil, fmt.Errorf("watch %s: debounce %v must be positive", root, debounce)
	}
	if f == nil {
		f = defaultFilter()
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	abs, err := filepath.Abs(root)
	if err != nil {
		return nil, fmt.Errorf("watch %s: %w", root, err)
	}
	fi, err := os.Stat(abs)
	if err != nil {
		return nil, fmt.Errorf("watch: %w", err)
	}
	if !fi.IsDir() {
		return nil, fmt.Errorf("watch %s: not a directory", abs)
	}
	fsw, err := fsnotify.NewBufferedWatcher(eventBuffer)
	if err != nil {
		return nil, fmt.Errorf("watch %s: %w", abs, err)
	}
	w := &Watcher{
		root:     abs,
		f:        f,
		debounce: debounce,
		log:      log.With("root", abs),
		fsw:      fsw,
		out:      make(chan Change),
		watched:  make(map[string]bool),
	}
	if err := w.addTree("", nil); err != nil {
		fsw.Close()
		return nil, err
	}
	return w, nil
}

// Changes returns the channel on which Run delivers Changes. It is closed
// when Run returns. While the receiver is busy, further batches are merged
// into the one waiting to be delivered, so Run never blocks on it.
func (w *Watcher) Changes() <-chan Change { return w.out }

// Close stops watching and releases the watches. Run calls it on return;
// call it yourself only when Run is never called. It is safe to call more
// than once.
func (w *Watcher) Close() error {
	w.closeOnce.Do(func() {
		w.closed.Store(true)
		if err := w.fsw.Close(); err != nil {
			w.closeErr = fmt.Errorf("watch %s: close: %w", w.root, err)
		}
	})
	return w.closeErr
}

// Run processes events until ctx is done, then closes the Watcher and the
// Changes channel and returns nil. It returns an error only if it is called
// twice or the underlying watcher stops on its own.
func (w *Watcher) Run(ctx context.Context) error {
	if !w.running.CompareAndSwap(false, true) {
		return fmt.Errorf("watch %s: Run called twice", w.root)
	}
	defer close(w.out)
	defer w.Close()

	b := newBatch(w.debounce)
	defer b.timer.Stop()
	var outbox *Change
	for {
		var out chan<- Change
		var next Change
		if outbox != nil {
			out, next = w.out, *outbox
		}
		select {
		case <-ctx.Done():
			return nil
		case ev, ok := <-w.fsw.Events:
			if !ok {
				return w.stopped()
			}
			w.handle(ev, b)
		case err, ok := <-w.fsw.Errors:
			if !ok {
				return w.stopped()
			}
			if errors.Is(err, fsnotify.ErrEventOverflow) {
				w.log.Warn("hostmon: event queue overflow; full rescan needed", "err", err)
			} else {
				w.log.Error("hostmon: watch error; full rescan needed", "err", err)
			}
			b.markRescan()
			w.resync(b)
		case <-b.timer.C:
			outbox = b.flush(outbox)
		case out <- next:
			outbox = nil
		}
	}
}

func (w *Watcher) stopped() error {
	if w.closed.Load() {
		return nil
	}
	return fmt.Errorf("watch %s: fsnotify stopped", w.root)
}

// rel converts an event name to a path relative to the root; "" is the
// root itself, ok is false for a name outside the root.
func (w *Watcher) rel(name string) (string, bool) {
	if name == w.root {
		return "", true
	}
	r, ok := strings.CutPrefix(name, w.root+string(filepath.Separator))
	if !ok {
		return "", false
	}
	return filepath.ToSlash(r), true
}

func (w *Watcher) abs(rel string) string {
	if rel == "" {
		return w.root
	}
	return filepath.Join(w.root, filepath.FromSlash(rel))
}

// handle folds one fsnotify event into the batch, adding watches for new
// directories and dropping those of directories that went away.
func (w *Watcher) handle(ev fsnotify.Event, b *batch) {
	rel, ok := w.rel(ev.Name)
	if !ok {
		w.log.Debug("hostmon: event outside the root", "event", ev.String())
		return
	}
	if rel == "" {
		// The root itself: its mode and times are not an item, but its
		// removal or renaming is everyone's problem.
		if ev.Has(fsnotify.Remove) || ev.Has(fsnotify.Rename) {
			w.log.Error("hostmon: job root removed or renamed", "event", ev.Op.String())
			b.markRescan()
		}
		return
	}
	if ev.Has(fsnotify.Remove) || ev.Has(fsnotify.Rename) {
		w.unwatchTree(rel)
	}
	isDir, known := false, false
	if ev.Has(fsnotify.Create) || ev.Has(fsnotify.Write) || ev.Has(fsnotify.Chmod) {
		if fi, err := os.Lstat(ev.Name); err == nil {
			isDir, known = fi.IsDir(), true
		}
	}
	if known {
		if !w.f.Match(rel, isDir) {
			return
		}
	} else if !w.f.Match(rel, false) && !w.f.Match(rel, true) {
		return
	}
	if index.ValidatePath(rel) != nil {
		w.log.Debug("hostmon: ignoring event on an invalid path", "path", rel)
		return
	}
	// a string of its own: rel is part of the event's name (the absolute
	// path), which the batch would keep alive with it, ~80 bytes a path
	// for the 100,000 renames of a target's initial sync, held until the
	// busy job takes them
	if known && isDir && ev.Op == fsnotify.Chmod {
		b.addShallow(strings.Clone(rel))
		return
	}
	b.add(strings.Clone(rel))
	if isDir && ev.Has(fsnotify.Create) {
		// Files may have been created inside before the watch was added:
		// report the whole subtree.
		if err := w.addTree(rel, b); err != nil {
			w.log.Error("hostmon: cannot watch new directory; full rescan needed", "path", rel, "err", err)
			b.markRescan()
		}
	}
}

// addTree watches the directory rel and the directories below it that the
// filter admits. With a batch, it also reports every admitted path below
// rel.
func (w *Watcher) addTree(rel string, b *batch) error {
	if err := w.fsw.Add(w.abs(rel)); err != nil {
		if vanished(err) && rel != "" {
			return nil
		}
		if errors.Is(err, syscall.ENOSPC) {
			return fmt.Errorf("watch %s: %w (raise fs.inotify.max_user_watches)", w.abs(rel), err)
		}
		return fmt.Errorf("watch %s: %w", w.abs(rel), err)
	}
	w.watched[rel] = true
	entries, err := os.ReadDir(w.abs(rel))
	if err != nil {
		if vanished(err) && rel != "" {
			return nil
		}
		return fmt.Errorf("watch: %w", err)
	}
	for _, e := range entries {
		child := e.Name()
		if rel != "" {
			child = rel + "/" + child
		}
		isDir := e.IsDir()
		if !w.f.Match(child, isDir) || index.ValidatePath(child) != nil {
			continue
		}
		if b != nil {
			b.add(child)
		}
		if isDir {
			if err := w.addTree(child, b); err != nil {
				return err
			}
		}
	}
	return nil
}

// unwatchTree drops the watches of rel and everything below it, if rel was
// a watched directory. The kernel keeps a moved directory's watches, which
// would otherwise go on reporting events under the old names.
func (w *Watcher) unwatchTree(rel string) {
	prefix := rel + "/"
	for d := range w.watched {
		if d == rel || strings.HasPrefix(d, prefix) {
			delete(w.watched, d)
			// Errors only say the watch is already gone.
			_ = w.fsw.Remove(w.abs(d))
		}
	}
}

// resync re-walks the tree after events were lost: it drops watches of
// directories that no longer exist under their name and watches the ones
// that were missed.
func (w *Watcher) resync(b *batch) {
	found := make(map[string]bool)
	var walk func(rel string)
	walk = func(rel string) {
		found[rel] = true
		entries, err := os.ReadDir(w.abs(rel))
		if err != nil {
			return
		}
		for _, e := range entries {
			child := e.Name()
			if rel != "" {
				child = rel + "/" + child
			}
			if e.IsDir() && w.f.Match(child, true) && index.ValidatePath(child) == nil {
				walk(child)
			}
		}
	}
	walk("")
	// Remove stale names first: fsnotify would otherwise keep a moved
	// directory's watch under its old name when the new name is added.
	for d := range w.watched {
		if !found[d] {
			delete(w.watched, d)
			_ = w.fsw.Remove(w.abs(d))
		}
	}
	dirs := make([]string, 0, len(found))
	for d := range found {
		dirs = append(dirs, d)
	}
	sort.Strings(dirs)
	for _, d := range dirs {
		if err := w.fsw.Add(w.abs(d)); err != nil {
			if !vanished(err) {
				w.log.Error("hostmon: cannot watch directory", "path", d, "err", err)
				b.markRescan()
			}
			continue
		}
		w.watched[d] = true
	}
}

// batch gathers paths until the debounce timer fires.
type batch struct {
	debounce time.Duration
	paths    map[string]struct{}
	// perDir counts the paths of each directory (their parent) in paths;
	// whole holds the directories that stand for everything below them
	// (see coalesceAt)
	perDir  map[string]int
	whole   map[string]struct{}
	shallow map[string]struct{} // directories whose own attributes changed (Change.Shallow)
	rescan  bool
	first   time.Time // first event of the batch; zero when empty
	timer   *time.Timer
}

func newBatch(debounce time.Duration) *batch {
	t := time.NewTimer(time.Hour)
	t.Stop()
	return &batch{debounce: debounce, paths: make(map[string]struct{}), timer: t}
}

func (b *batch) add(rel string) {
	b.put(rel)
	b.touch()
}

// coalesceAt is how many paths of one directory a batch holds before the
// directory stands for them and for whatever else changes below it until
// the batch is delivered: a Change's path is rescanned with everything
// below it, so the directory says as much as its paths did. An apply of
// 100,000 files, seen by the target's own watcher while the job is busy,
// then waits as its 100 directories (and at most coalesceAt paths of
// each), not as 100,000 paths (~10 MB of map and list).
const coalesceAt = 256

// put adds rel to the batch's paths, unless a directory above it already
// stands for it.
func (b *batch) put(rel string) {
	if _, dup := b.paths[rel]; dup || b.covered(rel) {
		return
	}
	b.paths[rel] = struct{}{}
	dir := index.Parent(rel)
	if dir == "" {
		return // the root's own entries: a rescan of the whole tree is no cheaper
	}
	if b.perDir == nil {
		b.perDir = map[string]int{}
	}
	// rel is not covered: neither dir nor a directory above it is whole
	if b.perDir[dir]++; b.perDir[dir] == coalesceAt {
		if b.whole == nil {
			b.whole = map[string]struct{}{}
		}
		b.whole[dir] = struct{}{}
		b.paths[dir] = struct{}{}
	}
}

// covered reports whether a directory above rel stands for it (whole).
func (b *batch) covered(rel string) bool {
	if len(b.whole) == 0 {
		return false
	}
	for d := index.Parent(rel); d != ""; d = index.Parent(d) {
		if _, ok := b.whole[d]; ok {
			return true
		}
	}
	return false
}

// addShallow adds a directory whose own attributes changed.
func (b *batch) addShallow(rel string) {
	b.addShallowQuiet(rel)
	b.touch()
}

// addShallowQuiet is addShallow without rearming the timer.
func (b *batch) addShallowQuiet(rel string) {
	if b.shallow == nil {
		b.shallow = map[string]struct{}{}
	}
	b.shallow[rel] = struct{}{}
}

func (b *batch) markRescan() {
	b.rescan = true
	b.touch()
}

// touch (re)arms the timer: debounce from now, but no later than
// maxDelayFactor×debounce after the batch's first event.
func (b *batch) touch() {
	now := time.Now()
	if b.first.IsZero() {
		b.first = now
	}
	deadline := now.Add(b.debounce)
	if limit := b.first.Add(maxDelayFactor * b.debounce); deadline.After(limit) {
		deadline = limit
	}
	b.timer.Reset(deadline.Sub(now))
}

// batchKept is the most paths a batch's map may have held for flush to
// clear it for the next batch rather than let it go: a cleared map keeps
// the tables it grew to, and the burst of an apply of 100,000 files (the
// target's own writes) would leave ~2.6 MB held for the agent's lifetime.
const batchKept = 1024

// reset empties the batch's paths, letting go of a large map.
func (b *batch) reset() {
	b.perDir, b.whole = nil, nil
	if len(b.paths) > batchKept {
		b.paths = make(map[string]struct{})
		return
	}
	clear(b.paths)
}

// flush empties the batch into outbox (merging with a Change not yet
// delivered) and returns the Change to deliver.
func (b *batch) flush(outbox *Change) *Change {
	if b.first.IsZero() {
		return outbox
	}
	if outbox != nil {
		for _, p := range outbox.Paths {
			b.put(p)
		}
		for _, p := range outbox.Shallow {
			b.addShallowQuiet(p)
		}
		b.rescan = b.rescan || outbox.Rescan
	}
	c := &Change{Paths: make([]string, 0, len(b.paths)), Rescan: b.rescan}
	for p := range b.paths {
		if !b.covered(p) {
			c.Paths = append(c.Paths, p)
		}
	}
	sort.Strings(c.Paths)
	for p := range b.shallow {
		if _, deep := b.paths[p]; !deep {
			c.Shallow = append(c.Shallow, p)
		}
	}
	sort.Strings(c.Shallow)
	b.shallow = nil
	b.reset()
	b.rescan = false
	b.first = time.Time{}
	return c
}
