package hostmon

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"pbxsync/internal/beneath"
	"pbxsync/internal/index"
)

// racyWindow: a file whose inode changed less than this long before it was
// hashed could change again within the same timestamp tick without its
// stat changing, so its state is recorded as not to be trusted (CTime 0).
// Linux stamps files from a clock that ticks every few milliseconds; a
// second leaves room for coarser filesystems.
const racyWindow = time.Second

// hashAttempts bounds how often a file that changes while it is hashed is
// hashed again before its (unstable) state is recorded untrusted.
const hashAttempts = 3

// hashBufSize is the read size used for hashing.
const hashBufSize = 128 << 10

// FileState is the scanned state of one file or directory: the index item
// plus the stat fields that let a later scan trust the hash without reading
// the file.
type FileState struct {
	index.Item
	Dev   uint64 // device of the filesystem holding the inode
	Inode uint64 // inode number
	// CTime is the inode change time in Unix nanoseconds. It is 0 when the
	// hash must not be trusted by a later scan: the file changed while it
	// was hashed, or so shortly before that a further change could have kept
	// the same timestamps ("racy clean").
	CTime int64
}

// trusts reports whether prev's hash still describes a file whose current
// stat is cur.
func (prev FileState) trusts(cur FileState) bool {
	return prev.Kind == index.KindFile && !prev.Deleted && prev.CTime != 0 &&
		prev.Size == cur.Size && prev.MTime == cur.MTime &&
		prev.Dev == cur.Dev && prev.Inode == cur.Inode && prev.CTime == cur.CTime
}

// ToIndex returns the items of m as an index.Index.
func ToIndex(m map[string]FileState) index.Index {
	x := index.New(len(m))
	for _, st := range m {
		x.Set(st.Item)
	}
	return x
}

// Scan walks the job root and returns the state of every file and directory
// below it that f admits (the root itself is not included), keyed by path
// relative to root. A nil f admits everything except the built-in excludes.
//
// Symlinks are not followed; they and special files (FIFOs, sockets,
// devices), as well as names that are not valid item paths (see
// index.ValidatePath), are skipped and logged at Warn level on log (which
// may be nil). Excluded directories are not entered.
//
// A regular file whose size, mtime, device, inode and ctime equal those of
// its entry in prev keeps prev's hash without being read; every other file
// is hashed by streaming it through index.HashReader. Version vectors are
// carried over from prev unchanged: Scan never bumps them. A file or
// directory that vanishes during the walk is simply absent. An entry that
// exists but cannot be read (permission denied, I/O error) is an error
// rather than an omission, so that it is never mistaken for a deletion:
// Scan fails with an *UnreadableError naming every such entry (ScanTree
// reports them and carries on). Scan stops early with an error wrapping
// ctx.Err() when ctx is done.
func Scan(ctx context.Context, root string, f *Filter, prev map[string]FileState, log *slog.Logger) (map[string]FileState, error) {
	res, err := ScanTree(ctx, root, f, prev, log)
	if err != nil {
		return nil, err
	}
	if len(res.Unreadable) > 0 {
		return nil, &UnreadableError{Root: root, Paths: res.Unreadable}
	}
	return res.States, nil
}

// Scanned is the result of ScanTree and ScanTreePaths.
type Scanned struct {
	// States is the state of every admitted file and directory.
	States map[string]FileState
	// Unreadable maps each entry that exists but could not be read
	// (permission denied, I/O error), and each directory that could not
	// be listed, to the reason. Such an entry, and for a directory its
	// subtree, keeps its state from prev: it is neither re-read nor
	// dropped, so that a failure to read is never taken for a deletion.
	// An unreadable entry prev does not know is absent from States.
	Unreadable map[string]string
	// Refused maps each entry whose name a job may not sync (see
	// index.ValidateName) to the reason; it is skipped.
	Refused map[string]string
}

// UnreadableError is Scan's and ScanPaths' error when entries exist that
// cannot be read.
type UnreadableError struct {
	Root  string
	Paths map[string]string // path relative to Root -> reason
}

func (e *UnreadableError) Error() string {
	ps := make([]string, 0, len(e.Paths))
	for p := range e.Paths {
		ps = append(ps, p)
	}
	sort.Strings(ps)
	var b strings.Builder
	fmt.Fprintf(&b, "scan %s: cannot read", e.Root)
	for i, p := range ps {
		if i == 5 {
			fmt.Fprintf(&b, " … and %d more", len(ps)-5)
			break
		}
		fmt.Fprintf(&b, " %s (%s);", p, e.Paths[p])
	}
	return strings.TrimSuffix(b.String(), ";")
}

// Unwrap returns fs.ErrPermission when every path was refused for lack
// of permission, so errors.Is(err, fs.ErrPermission) holds.
func (e *UnreadableError) Unwrap() error {
	for _, why := range e.Paths {
		if !strings.Contains(why, fs.ErrPermission.Error()) {
			return nil
		}
	}
	return fs.ErrPermission
}

// ScanTree is Scan that reports entries it cannot read in the result
// (see Scanned.Unreadable) instead of failing on them. It fails only when
// the root itself cannot be read or ctx is done; on failure nothing of the
// result may be used.
func ScanTree(ctx context.Context, root string, f *Filter, prev map[string]FileState, log *slog.Logger) (Scanned, error) {
	s, err := newScanner(ctx, root, f, StateMap(prev), log)
	if err != nil {
		return Scanned{}, err
	}
	s.out = make(map[string]FileState, len(prev))
	if err := s.walk(""); err != nil {
		return Scanned{}, err
	}
	return Scanned{States: s.out, Unreadable: s.unreadable, Refused: s.refused}, nil
}

// ScanPaths re-scans only the given paths (relative to root) and returns a
// new complete map: prev with those paths brought up to date. A path that is
// a directory is re-scanned recursively; a path that no longer exists (or is
// now excluded, or lies below something that is not a directory) is removed
// from the result together with everything below it. The parent directories
// of each path are refreshed as well, since creating or deleting an entry
// changes its parent. A path "" or "." means the whole tree and makes this a
// full Scan. prev is not modified; the result shares Version slices with it
// (index.Vector methods never modify a vector in place).
//
// Skipping, trust and error rules are those of Scan.
func ScanPaths(ctx context.Context, root string, f *Filter, paths []string, prev map[string]FileState, log *slog.Logger) (map[string]FileState, error) {
	res, err := ScanTreePaths(ctx, root, f, paths, prev, log)
	if err != nil {
		return nil, err
	}
	if len(res.Unreadable) > 0 {
		return nil, &UnreadableError{Root: root, Paths: res.Unreadable}
	}
	return res.States, nil
}

// ScanTreePaths is ScanPaths that reports entries it cannot read in the
// result instead of failing on them, as ScanTree does. Unreadable lists
// only entries met below the given paths (and their parents). It copies
// prev; ScanTreeDelta is the same rescan without the copy.
func ScanTreePaths(ctx context.Context, root string, f *Filter, paths []string, prev map[string]FileState, log *slog.Logger) (Scanned, error) {
	d, err := ScanTreeDelta(ctx, root, f, paths, prev, log)
	if err != nil {
		return Scanned{}, err
	}
	out := make(map[string]FileState, len(prev)+len(d.States))
	for p, st := range prev {
		out[p] = st
	}
	d.Apply(out)
	return Scanned{States: out, Unreadable: d.Unreadable, Refused: d.Refused}, nil
}

// Delta is what ScanTreeDelta found: the change to bring the previous
// state up to date, not a copy of it.
type Delta struct {
	// Full says the whole tree was scanned (a path "" or "."); States
	// then holds only the entries that differ from prev.
	Full bool
	// States is the new state of every entry the rescan recorded; an
	// entry may be unchanged.
	States map[string]FileState
	// Removed lists the entries of prev that are gone (or now excluded,
	// refused or skipped), sorted.
	Removed []string
	// Unreadable and Refused are those of Scanned, for the scanned paths.
	Unreadable map[string]string
	Refused    map[string]string
	// Read counts the files the scan read and hashed (those whose stat it
	// did not trust).
	Read int
	// Shallow lists the paths of WithShallow rescanned without what lies
	// below them (the others were rescanned in full), sorted.
	Shallow []string
	// Busy lists the files left alone because they are open for writing
	// (WithOpenForWriting), sorted.
	Busy []string
	// Initial is the scan state a first scan found (WithInitialStates: a
	// scan of the whole tree against an empty prev); States is nil then.
	Initial *States
}

// Apply brings m, the prev a Delta was scanned against, up to date in place.
func (d Delta) Apply(m map[string]FileState) {
	for _, p := range d.Removed {
		delete(m, p)
	}
	for p, st := range d.States {
		m[p] = st
	}
	for p, st := range d.Initial.All() {
		m[p] = st
	}
}

// Paths returns every path d records or removes, sorted.
func (d Delta) Paths() []string {
	out := make([]string, 0, len(d.States)+d.Initial.Len()+len(d.Removed))
	for p := range d.States {
		out = append(out, p)
	}
	for p := range d.Initial.All() {
		out = append(out, p)
	}
	out = append(out, d.Removed...)
	sort.Strings(out)
	return out
}

// ScanTreeDelta rescans paths as ScanTreePaths does but returns only what
// it found there (see Delta) and leaves prev alone: a rescan of one file
// costs O(1) in the size of prev, a rescan of a directory one pass over
// prev's keys to find what it held (no copy). A path "" or "." scans the
// whole tree (Delta.Full) and still returns only what differs from prev.
func ScanTreeDelta(ctx context.Context, root string, f *Filter, paths []string, prev map[string]FileState, log *slog.Logger, opts ...ScanOption) (Delta, error) {
	return ScanDelta(ctx, root, f, paths, StateMap(prev), log, opts...)
}

// ScanDelta is ScanTreeDelta from any Prev (a job's States).
func ScanDelta(ctx context.Context, root string, f *Filter, paths []string, prev Prev, log *slog.Logger, opts ...ScanOption) (Delta, error) {
	s, err := newScanner(ctx, root, f, prev, log)
	if err != nil {
		return Delta{}, err
	}
	for _, o := range opts {
		o(s)
	}
	todo := make(map[string]bool, len(paths))
	for _, p := range paths {
		p = strings.TrimSuffix(p, "/")
		if p == "" || p == "." {
			return s.full()
		}
		if err := index.ValidatePath(p); err != nil {
			return Delta{}, fmt.Errorf("scan %s: %w", root, err)
		}
		todo[p] = true
	}
	// Drop paths below another path of the list: the recursive scan of the
	// ancestor covers them (not the shallow one of a directory's own
	// attributes).
	deep := todo
	if len(s.shallow) > 0 {
		deep = make(map[string]bool, len(todo))
		for p := range todo {
			if !s.shallow[p] {
				deep[p] = true
			}
		}
	}
	roots := make([]string, 0, len(todo))
	for p := range todo {
		if !underAny(index.Parent(p), deep) {
			roots = append(roots, p)
		}
	}
	sort.Strings(roots)

	s.out = make(map[string]FileState, len(roots))
	s.parents = make(map[string]bool)
	handled := make(map[string]bool)
	gone := make(map[string]bool) // entries of prev that may be gone
	if s.optChangesOnly {
		s.changedOnly, s.gone = true, gone
	}
	var shallowed []string
	for _, p := range roots {
		if err := s.ctx.Err(); err != nil {
			return Delta{}, fmt.Errorf("scan %s: %w", s.root, err)
		}
		bad, err := s.refreshParents(p)
		if err != nil {
			return Delta{}, err
		}
		if bad != "" {
			// A parent is gone or no longer an admitted directory: what
			// was recorded below it is stale, and the parent itself is
			// scanned for what it is now.
			if handled[bad] {
				continue // already done for an earlier path
			}
			handled[bad] = true
			for q := range s.out {
				if q == bad || strings.HasPrefix(q, bad+"/") {
					delete(s.out, q)
				}
			}
			p = bad
		}
		if p != bad && s.attrsOnly(p) {
			if _, ok := s.prev.Get(p); ok {
				gone[p] = true
			}
			s.shallowRoot = p
			err := s.visit(p)
			s.shallowRoot = ""
			if err != nil {
				return Delta{}, err
			}
			shallowed = append(shallowed, p)
			continue
		}
		s.markGone(p, gone)
		if err := s.visit(p); err != nil {
			return Delta{}, err
		}
	}
	slices.Sort(s.busy)
	d := Delta{States: s.out, Unreadable: s.unreadable, Refused: s.refused, Read: s.hashed, Shallow: shallowed, Busy: s.busy}
	for q := range gone {
		if _, ok := s.out[q]; !ok {
			d.Removed = append(d.Removed, q)
		}
	}
	sort.Strings(d.Removed)
	return d, nil
}

// full walks the whole tree recording only what differs from prev, so a
// rescan of an unchanged tree holds no second copy of its state.
func (s *scanner) full() (Delta, error) {
	switch {
	case s.prev.Len() == 0 && s.optInitial:
		s.initial = newStatesBuilder(0) // everything is new, and is the scan state
	case s.prev.Len() == 0:
		s.out = map[string]FileState{} // everything is new: no set of what was seen
	default:
		s.changedOnly = true
		s.seen = make(map[string]struct{}, s.prev.Len())
		s.out = map[string]FileState{}
	}
	if err := s.walk(""); err != nil {
		return Delta{}, err
	}
	slices.Sort(s.busy)
	d := Delta{Full: true, States: s.out, Unreadable: s.unreadable, Refused: s.refused, Read: s.hashed, Busy: s.busy}
	if s.initial != nil {
		d.Initial = s.initial.states()
	}
	for q := range s.prev.All() {
		if _, ok := s.seen[q]; !ok {
			d.Removed = append(d.Removed, q)
		}
	}
	sort.Strings(d.Removed)
	return d, nil
}

// markGone adds p and, when prev holds a directory there, everything prev
// holds below it to gone: the candidates a rescan of p may find removed.
// A directory costs its paths (Prev.PathsUnder), not a pass over prev.
func (s *scanner) markGone(p string, gone map[string]bool) {
	st, ok := s.prev.Get(p)
	if !ok {
		return
	}
	gone[p] = true
	if st.Kind != index.KindDir {
		return
	}
	for q := range s.prev.PathsUnder(p) {
		gone[q] = true
	}
}

// underAny reports whether p or one of its parent directories is in set.
func underAny(p string, set map[string]bool) bool {
	for p != "" {
		if set[p] {
			return true
		}
		p = index.Parent(p)
	}
	return false
}

// ContentSink takes the content of a file a scan reads, in the same read
// that hashes it: it must consume r to its end (or fail) and return what
// index.HashReader would, the content's hash and size. A source passes
// its store's PutReader, so that new content is read once, not once to
// hash it and again to store it.
type ContentSink func(r io.Reader) (index.Hash, int64, error)

// StoredFunc learns of each file a scan handed to its sink (WithSink)
// and records: the item it records (path, content hash and size, mode and
// modification time). Files are read in parallel, so it must be safe for
// concurrent use.
type StoredFunc func(it index.Item)

// WithStored makes a scan with a sink call stored for each file the sink
// took and the scan records (a source offers that content to its
// targets while it still scans).
func WithStored(stored StoredFunc) ScanOption {
	return func(s *scanner) { s.stored = stored }
}

// ScanOption changes how a scan reads the files it hashes.
type ScanOption func(*scanner)

// WithShallow marks paths of a ScanDelta as directories whose own
// attributes changed (a watcher's Change.Shallow): such a directory whose
// kind, mode and inode are as prev has them is rescanned without what lies
// below it, which the watcher reports by its own paths; any other is
// rescanned in full, as the other paths are.
func WithShallow(paths []string) ScanOption {
	return func(s *scanner) {
		s.shallow = make(map[string]bool, len(paths))
		for _, p := range paths {
			s.shallow[p] = true
		}
	}
}

// WithOpenForWriting makes a scan leave alone a regular file that some
// process has open for writing and wrote in the last writeSettle (a copy
// or a recording under way, an upload that paused): it keeps its last
// known state, as an unreadable one does (a new file stays absent), and is
// listed in Delta.Busy; the caller scans it again later. A file not
// written for writeSettle is read even while open (a daemon that keeps
// its file open), and so are the paths of readAnyway (files the caller
// has waited on long enough).
func WithOpenForWriting(readAnyway map[string]bool) ScanOption {
	return func(s *scanner) { s.writers, s.readAnyway = true, readAnyway }
}

// writeSettle is how long after its last write a file open for writing
// is read all the same (WithOpenForWriting).
const writeSettle = time.Minute

// WithChangesOnly makes a scan of paths (not of the whole tree, which
// always does) return in Delta.States only the states that differ from
// prev's: a rescan of what an apply just wrote and settled (100,000 files
// after an initial sync) then holds no second copy of their states.
func WithChangesOnly() ScanOption {
	return func(s *scanner) { s.optChangesOnly = true }
}

// WithInitialStates makes a scan of the whole tree against an empty prev
// (a job's first) return what it finds as a States (Delta.Initial), built
// as the scan goes, instead of a map in Delta.States: at 100,000 files
// the map was 21 MB of the scanning agent's heap for the whole scan, and
// NewStates copied it into the States at the end, both live at once. Any
// other scan ignores it.
func WithInitialStates() ScanOption {
	return func(s *scanner) { s.optInitial = true }
}

// WithSink makes a scan hand every file it reads to sink (see
// ContentSink) instead of only hashing it. Files the scan trusts by
// their stat are not read and not handed over. A sink's own failure
// (not the file's) fails the scan: the file is not taken for unreadable.
func WithSink(sink ContentSink) ScanOption {
	return func(s *scanner) { s.sink = sink }
}

type scanner struct {
	ctx  context.Context
	root string
	f    *Filter
	prev Prev
	out  map[string]FileState
	log  *slog.Logger
	buf  []byte
	// readBufs are readAll's workers' buffers, one each
	readBufs [][]byte
	parents  map[string]bool // ScanPaths: parent directory → checked and usable
	// changedOnly: out gets only entries that differ from prev. A full
	// rescan (ScanTreeDelta of "") notes every entry met in seen; a scan
	// of paths asked for it (optChangesOnly: WithChangesOnly) takes every
	// entry met off gone, the entries of prev it may find removed.
	changedOnly    bool
	optChangesOnly bool
	// initial, when set, takes every state put instead of out (a first
	// scan asked for WithInitialStates: optInitial)
	initial    *statesBuilder
	optInitial bool
	seen       map[string]struct{}
	gone       map[string]bool
	// unreadable: entries that exist but could not be read, with why.
	unreadable map[string]string
	// writers: leave files open for writing alone (WithOpenForWriting),
	// but for readAnyway; busy lists those left alone.
	writers    bool
	readAnyway map[string]bool
	busy       []string
	refused    map[string]string // names that may not be synced, with why
	// openFile opens the file rel, the entry name of d, for hashing:
	// d.open, or a test's double (root can read a mode-0000 file, so only
	// a double can refuse it).
	openFile func(d scanDir, rel, name string) (scanFile, error)
	// openDir opens the directory rel (no symlink followed anywhere below
	// the root): openScanDir, or a test's double.
	openDir func(rel string) (scanDir, error)
	// sink, when set, takes the content of every file hashed (WithSink).
	sink ContentSink
	// stored, when set, learns of what the sink took (WithStored).
	stored StoredFunc
	hashed int // files read and hashed (Delta.Read)
	// shallow: directories of the paths whose own attributes changed
	// (WithShallow); shallowRoot is the one being visited without what
	// lies below it
	shallow     map[string]bool
	shallowRoot string
}

func newScanner(ctx context.Context, root string, f *Filter, prev Prev, log *slog.Logger) (*scanner, error) {
	if f == nil {
		f = defaultFilter()
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	fi, err := os.Stat(root)
	if err != nil {
		return nil, fmt.Errorf("scan: %w", err)
	}
	if !fi.IsDir() {
		return nil, fmt.Errorf("scan %s: not a directory", root)
	}
	return &scanner{ctx: ctx, root: root, f: f, prev: prev, log: log,
		openFile: func(d scanDir, _, name string) (scanFile, error) { return d.open(name) },
		openDir:  func(rel string) (scanDir, error) { return openScanDir(root, rel) },
	}, nil
}

// put records the state of rel.
func (s *scanner) put(rel string, st FileState) {
	if s.initial != nil {
		st.Path = rel
		s.initial.add(st)
		return
	}
	if s.changedOnly {
		if s.seen != nil {
			s.seen[rel] = struct{}{}
		} else {
			delete(s.gone, rel)
		}
		if p, ok := s.prev.Get(rel); ok && sameState(p, st) {
			return
		}
	}
	s.out[rel] = st
}

// sameState reports whether two states are the same in every field.
func sameState(a, b FileState) bool {
	return a.Path == b.Path && a.Kind == b.Kind && a.Size == b.Size && a.Mode == b.Mode && a.MTime == b.MTime &&
		a.Hash == b.Hash && a.Deleted == b.Deleted && a.Dev == b.Dev && a.Inode == b.Inode && a.CTime == b.CTime &&
		slices.Equal(a.Version, b.Version)
}

func (s *scanner) abs(rel string) string {
	if rel == "" {
		return s.root
	}
	return filepath.Join(s.root, filepath.FromSlash(rel))
}

// vanished reports whether err says the path is gone: removed, or a parent
// replaced by a non-directory during the walk.
func vanished(err error) bool {
	return errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR)
}

func (s *scanner) skip(rel, why string) {
	s.log.Warn("hostmon: not syncing path", "root", s.root, "path", rel, "reason", why)
}

// cannotRead records that rel exists but could not be read, and keeps
// what prev knew of it: rel itself unless self is false (a directory whose
// own stat is fresh), and everything below it.
func (s *scanner) cannotRead(rel string, self bool, err error) {
	if s.unreadable == nil {
		s.unreadable = map[string]string{}
	}
	why := err.Error()
	var pe *fs.PathError
	if errors.As(err, &pe) {
		why = pe.Err.Error()
	}
	s.unreadable[rel] = why
	s.log.Warn("hostmon: cannot read path; keeping its last known state", "root", s.root, "path", rel, "err", why)
	if st, ok := s.prev.Get(rel); ok && self {
		s.put(rel, st)
	}
	for p := range s.prev.PathsUnder(rel) {
		if st, ok := s.prev.Get(p); ok && p != rel {
			s.put(p, st)
		}
	}
}

// walk visits the entries of the directory rel ("" for the root),
// stat'ing and reading them through the open directory.
func (s *scanner) walk(rel string) error {
	d, err := s.openDir(rel)
	var entries []fs.DirEntry
	if err == nil {
		defer d.close()
		entries, err = d.list()
	}
	if err != nil {
		if rel != "" && vanished(err) {
			return nil
		}
		if rel != "" && s.ctx.Err() == nil {
			s.cannotRead(rel, false, err)
			return nil
		}
		return fmt.Errorf("scan: %w", err)
	}
	// the files to read are read together once the directory's entries
	// were looked at (readAll), the subdirectories walked in between
	var todo []pendingRead
	for _, e := range entries {
		if err := s.ctx.Err(); err != nil {
			return fmt.Errorf("scan %s: %w", s.root, err)
		}
		child := e.Name()
		if rel != "" {
			child = rel + "/" + child
		}
		if err := s.visitIn(d, child, e.Name(), &todo); err != nil {
			return err
		}
		if len(todo) >= readBatch {
			if err := s.readAll(d, todo); err != nil {
				return err
			}
			todo = todo[:0]
		}
	}
	return s.readAll(d, todo)
}

// visit records the entry rel (and, for a directory, its subtree).
func (s *scanner) visit(rel string) error {
	d, err := s.openDir(index.Parent(rel))
	if err != nil {
		// refreshParents found the parents real directories: one
		// replaced since is a change the watcher reports
		if vanished(err) || errors.Is(err, beneath.ErrSymlink) {
			return nil
		}
		s.cannotRead(rel, true, err)
		return nil
	}
	defer d.close()
	return s.visitIn(d, rel, rel[strings.LastIndexByte(rel, '/')+1:], nil)
}

// visitIn records the entry rel, the entry name of the open directory d
// (and, for a directory, its subtree). When todo is given, it adds a
// regular file it has to read to todo instead of reading it.
func (s *scanner) visitIn(d scanDir, rel, name string, todo *[]pendingRead) error {
	fi, err := d.lstat(name)
	if err != nil {
		if vanished(err) {
			return nil
		}
		s.cannotRead(rel, true, err)
		return nil
	}
	mode := fi.Mode()
	if !s.f.Match(rel, mode.IsDir()) {
		return nil // excluded; for a directory this prunes the subtree
	}
	if err := index.ValidateName(rel); err != nil {
		s.skip(rel, err.Error())
		if s.refused == nil {
			s.refused = map[string]string{}
		}
		s.refused[rel] = err.Error()
		return nil
	}
	switch {
	case mode.IsDir():
		s.put(rel, s.state(rel, index.KindDir, fi))
		if rel == s.shallowRoot {
			return nil // its own attributes only (WithShallow)
		}
		return s.walk(rel)
	case mode.IsRegular():
		if todo == nil {
			return s.file(d, rel, name, fi)
		}
		if !s.trusted(rel, fi) {
			*todo = append(*todo, pendingRead{rel, name, fi})
		}
		return nil
	case mode&fs.ModeSymlink != 0:
		s.skip(rel, "symlink")
	default:
		s.skip(rel, "special file ("+mode.Type().String()+")")
	}
	return nil
}

// state builds the FileState of rel from fi, without a hash, carrying over
// the version vector from prev.
func (s *scanner) state(rel string, kind index.Kind, fi fs.FileInfo) FileState {
	dev, ino, ctime := sysStat(fi)
	st := FileState{
		Item: index.Item{
			Path:  rel,
			Kind:  kind,
			Mode:  fi.Mode() & index.ModeBits,
			MTime: fi.ModTime().UnixNano(),
		},
		Dev:   dev,
		Inode: ino,
		CTime: ctime,
	}
	if kind == index.KindFile {
		st.Size = fi.Size()
	}
	if p, ok := s.prev.Get(rel); ok {
		st.Version = p.Version
	}
	return st
}

// file records the regular file rel (the entry name of d), trusting
// prev's hash when the stat matches and hashing it otherwise.
func (s *scanner) file(d scanDir, rel, name string, fi fs.FileInfo) error {
	if s.trusted(rel, fi) {
		return nil
	}
	if s.buf == nil {
		s.buf = make([]byte, hashBufSize)
	}
	return s.take(s.read(d, rel, name, s.buf))
}

// trusted records rel with prev's hash when its stat says it did not
// change, and reports whether it did.
func (s *scanner) trusted(rel string, fi fs.FileInfo) bool {
	cur := s.state(rel, index.KindFile, fi)
	if p, ok := s.prev.Get(rel); ok && p.trusts(cur) {
		cur.Hash = p.Hash
		s.put(rel, cur)
		return true
	}
	return false
}

// fileRead is what reading one file found (scanner.read), recorded by
// scanner.take.
type fileRead struct {
	rel        string
	st         FileState // record it, unless one of the below is set
	gone       bool      // vanished: nothing to record
	skip       string    // not synced, why
	unreadable error     // exists but cannot be read
	busy       bool      // open for writing: left alone (WithOpenForWriting)
	err        error     // ends the scan
}

// read hashes the regular file rel, the entry name of d (handing it to
// the sink, if any), through buf. It changes nothing in s, so files may
// be read in parallel (readAll); take records the result. The system
// calls of a small file: open, fstat, read, fstat, close.
func (s *scanner) read(d scanDir, rel, name string, buf []byte) fileRead {
	r := fileRead{rel: rel}
	fh, err := s.openFile(d, rel, name)
	if err != nil {
		switch {
		case vanished(err):
			r.gone = true
		case errors.Is(err, syscall.ELOOP) || errors.Is(err, beneath.ErrSymlink):
			r.skip = "symlink"
		case errors.Is(err, beneath.ErrNotRegular):
			r.skip = "special file"
		default:
			r.unreadable = err
		}
		return r
	}
	defer fh.Close()
	for attempt := 1; ; attempt++ {
		pre, err := fh.stat()
		if err != nil {
			r.unreadable = err
			return r
		}
		if !pre.Mode().IsRegular() {
			r.skip = "special file (" + pre.Mode().Type().String() + ")"
			return r
		}
		if attempt == 1 && s.writers && !s.readAnyway[rel] && time.Since(pre.ModTime()) < writeSettle && fh.openForWriting() {
			r.busy = true
			return r
		}
		if attempt > 1 {
			if err := fh.rewind(); err != nil {
				r.unreadable = err
				return r
			}
		}
		// up to the size of pre: what the file has beyond it, or a
		// change while it is read, shows in the fstat after
		src := &hashSource{ctx: s.ctx, f: fh, buf: buf, left: pre.Size()}
		var h index.Hash
		var n int64
		if s.sink != nil {
			h, n, err = s.sink(src)
		} else {
			h, n, err = index.HashReader(src)
		}
		if err != nil {
			if cerr := s.ctx.Err(); cerr != nil {
				r.err = fmt.Errorf("scan %s: %w", s.root, cerr)
			} else if s.sink != nil && src.err == nil {
				r.err = fmt.Errorf("scan %s: %s: %w", s.root, rel, err)
			} else {
				r.unreadable = fmt.Errorf("read: %w", err)
			}
			return r
		}
		post, err := fh.stat()
		if err != nil {
			r.unreadable = err
			return r
		}
		cur := s.state(rel, index.KindFile, pre)
		stable := n == pre.Size() && sameStat(pre, post)
		if !stable && attempt < hashAttempts {
			continue
		}
		cur.Hash = h
		cur.Size = n
		if !stable || time.Since(time.Unix(0, cur.CTime)) < racyWindow {
			cur.CTime = 0
		}
		r.st = cur
		if s.sink != nil && s.stored != nil {
			s.stored(cur.Item)
		}
		return r
	}
}

// take records what read found.
func (s *scanner) take(r fileRead) error {
	switch {
	case r.err != nil:
		return r.err
	case r.gone:
	case r.skip != "":
		s.skip(r.rel, r.skip)
	case r.unreadable != nil:
		s.cannotRead(r.rel, true, r.unreadable)
	case r.busy:
		s.busy = append(s.busy, r.rel)
		if st, ok := s.prev.Get(r.rel); ok {
			s.put(r.rel, st)
		}
	default:
		s.hashed++
		s.put(r.rel, r.st)
	}
	return nil
}

// pendingRead is a file of a directory being walked that must be read.
type pendingRead struct {
	rel, name string
	fi        fs.FileInfo
}

// readParallel bounds the files one scan reads at once; readBatch the
// files of one directory waiting to be read (what a directory of many
// files holds in memory while its files are read).
const (
	readParallel = 4
	readBatch    = 256
)

// readAll reads the files of the directory d, up to readParallel at
// once (reads block on the disk, so even one CPU gains), and records them
// in their order. A source's scan stores what it reads in the same pass,
// so this is also its store's parallelism.
func (s *scanner) readAll(d scanDir, todo []pendingRead) error {
	workers := min(readParallel, len(todo))
	if workers <= 1 {
		for _, f := range todo {
			if err := s.file(d, f.rel, f.name, f.fi); err != nil {
				return err
			}
		}
		return nil
	}
	res := make([]fileRead, len(todo))
	// the workers' buffers are the scanner's, kept from one batch to the
	// next: made for each, they were 196 MB of a source's garbage in a 100k
	// first scan (a batch of 256 files at a time)
	for len(s.readBufs) < workers {
		s.readBufs = append(s.readBufs, make([]byte, hashBufSize))
	}
	var next atomic.Int64
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		buf := s.readBufs[w]
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1)) - 1
				if i >= len(todo) {
					return
				}
				if s.ctx.Err() != nil {
					res[i] = fileRead{rel: todo[i].rel, err: fmt.Errorf("scan %s: %w", s.root, s.ctx.Err())}
					continue
				}
				res[i] = s.read(d, todo[i].rel, todo[i].name, buf)
			}
		}()
	}
	wg.Wait()
	for _, r := range res {
		if err := s.take(r); err != nil {
			return err
		}
	}
	return nil
}

// sameStat reports whether nothing about a file changed between two fstats.
func sameStat(a, b fs.FileInfo) bool {
	adev, aino, actime := sysStat(a)
	bdev, bino, bctime := sysStat(b)
	return a.Size() == b.Size() && a.ModTime().Equal(b.ModTime()) &&
		adev == bdev && aino == bino && actime == bctime
}

// refreshParents checks that every parent directory of p is a real,
// admitted directory and records its current state. It returns the topmost
// parent that is not (gone, not a directory, a symlink or excluded), or ""
// when all are.
func (s *scanner) refreshParents(p string) (string, error) {
	var parents []string
	for d := index.Parent(p); d != ""; d = index.Parent(d) {
		parents = append(parents, d)
	}
	for i := len(parents) - 1; i >= 0; i-- {
		d := parents[i]
		ok, seen := s.parents[d]
		if !seen {
			var err error
			ok, err = s.refreshDir(d)
			if err != nil {
				return "", err
			}
			s.parents[d] = ok
		}
		if !ok {
			return d, nil
		}
	}
	return "", nil
}

// refreshDir records the state of the parent directory d and reports
// whether it is a real, admitted directory.
func (s *scanner) refreshDir(d string) (bool, error) {
	fi, err := os.Lstat(s.abs(d))
	if err != nil {
		// gone, or unreadable: the caller visits d, which records
		// either (an unreadable d keeps its last known subtree)
		return false, nil
	}
	if !fi.IsDir() || s.f.ExcludesDir(d) {
		return false, nil
	}
	s.put(d, s.state(d, index.KindDir, fi))
	return true, nil
}

// hashSource feeds up to left bytes of a file to index.HashReader
// through a reused buffer, checking ctx between reads.
// It records the file's own read error (err), to tell it from a sink's.
type hashSource struct {
	ctx  context.Context
	f    scanFile
	buf  []byte
	left int64
	err  error
}

func (h *hashSource) Read(p []byte) (int, error) {
	if err := h.ctx.Err(); err != nil {
		return 0, err
	}
	if h.left <= 0 {
		return 0, io.EOF
	}
	if int64(len(p)) > h.left {
		p = p[:h.left]
	}
	n, err := h.f.Read(p)
	h.left -= int64(n)
	if err != nil && err != io.EOF {
		h.err = err
	}
	return n, err
}

// WriteTo lets io.Copy use h's buffer instead of allocating one per file.
func (h *hashSource) WriteTo(w io.Writer) (int64, error) {
	var total int64
	for {
		n, err := h.Read(h.buf)
		if n > 0 {
			if _, werr := w.Write(h.buf[:n]); werr != nil {
				return total, werr
			}
			total += int64(n)
		}
		if err == io.EOF {
			return total, nil
		}
		if err != nil {
			return total, err
		}
	}
}

// attrsOnly reports whether p is a shallow path (WithShallow) that is
// still the directory prev holds: same kind, mode and inode, so that only
// its own attributes (times) can have changed. A mode changed (a directory
// made unreadable), a directory replaced or gone: rescanned in full.
func (s *scanner) attrsOnly(p string) bool {
	if !s.shallow[p] {
		return false
	}
	st, ok := s.prev.Get(p)
	if !ok || st.Kind != index.KindDir || st.Deleted {
		return false
	}
	fi, err := os.Lstat(filepath.Join(s.root, filepath.FromSlash(p)))
	if err != nil || !fi.IsDir() || fi.Mode()&index.ModeBits != st.Mode {
		return false
	}
	dev, ino, _ := sysStat(fi)
	return dev == st.Dev && ino == st.Inode
}
