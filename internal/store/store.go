package store

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/klauspost/compress/zstd"
	bolt "go.etcd.io/bbolt"

	"pbxsync/internal/index"
)

// Sentinel errors. Every error the store returns that is about a missing or
// damaged object wraps one of them and names the job, generation or blob.
var (
	// ErrNotFound: the blob, generation, job or file does not exist.
	ErrNotFound = errors.New("not found")
	// ErrCorrupt: stored or received bytes fail their checksum, hash or
	// format checks (a flipped bit, a torn write, a peer sending the wrong
	// content, a zip bomb).
	ErrCorrupt = errors.New("corrupt")
	// ErrReadOnly: a write was attempted on a store opened with OpenReadOnly.
	ErrReadOnly = errors.New("store is read-only")
	// ErrLocked: another process holds the store's writer lock.
	ErrLocked = errors.New("store is locked by another process")
	// ErrClosed: the Store was closed.
	ErrClosed = errors.New("store is closed")
)

// formatLine is the content of the FORMAT file: the layout version.
// formatLine1 is the old layout (plain files), migrated by Open.
const (
	formatLine  = "pbxsync-store 2\n"
	formatLine1 = "pbxsync-store 1\n"
)

// Defaults of the options.
const (
	// DefaultGCGrace is how old an unreferenced blob must be before GC
	// deletes it; it protects blobs put moments ago whose generation is not
	// recorded yet.
	DefaultGCGrace = 15 * time.Minute
	// MaxWindow bounds the zstd window a decoder accepts, so that a hostile
	// frame cannot make the store allocate much memory. The store's own
	// encoder uses a 1 MiB window (encoderWindow); blobs
	// written before used 8 MiB.
	MaxWindow = 32 << 20
)

// Option changes how Open and OpenReadOnly set up a Store.
type Option func(*options)

type options struct {
	gcGrace time.Duration
	level   zstd.EncoderLevel
	dbBlobs int // see dbBlobsBytes
	// recordChunk: the most changes of a generation written in one
	// transaction (0: recordChunkChanges)
	recordChunk int
	// journalPart: the most entries of a journal in one value (0:
	// journalPartEntries)
	journalPart int
	// minRecent: the fewest locations of small blobs merged from recent
	// into main (0: minRecent)
	minRecent int
}

// WithGCGrace sets how long unreferenced blobs (and temporary files) are
// kept before GC may delete them; the default is DefaultGCGrace. Tests use 0.
func WithGCGrace(d time.Duration) Option { return func(o *options) { o.gcGrace = d } }

// WithCompressionLevel sets the zstd level of new blobs (default
// DefaultLevel). Every level writes frames that every Store reads.
func WithCompressionLevel(l zstd.EncoderLevel) Option { return func(o *options) { o.level = l } }

// DefaultLevel is the zstd level of new blobs unless WithCompressionLevel
// says otherwise. SpeedFastest, not SpeedDefault: nearly all of a farm's
// files are configuration files of a few KB, where the level's cost is
// building the entropy tables of each file, not finding matches; measured
// per file (CPU of one thread, docs/performance.md, ninth pass: i13src):
// the benchscale .conf files (1.5 KB) 14 µs instead of 19 µs, store size
// 0.419 instead of 0.415 of the content; Asterisk's 106 sample configs
// (7.2 KB on average) 40 µs instead of 61 µs, 0.368 instead of 0.350; a
// 23 MiB generated dialplan 49 ms instead of 60 ms, 0.067 instead of 0.068.
const DefaultLevel = zstd.SpeedFastest

// minCodecs is the least number of compressors (and decompressors) kept
// for reuse.
const minCodecs = 4

// Store is the content-addressed blob store plus per-job generation
// metadata under one directory. It is safe for concurrent use by the
// goroutines of one process; other processes may read the same directory
// through OpenReadOnly at the same time. See the package documentation for
// the layout and the crash-safety rules.
type Store struct {
	dir      string
	log      *slog.Logger
	opt      options
	readOnly bool
	closed   atomic.Bool
	// lookups counts the blobs looked up one at a time (Has, a blob's
	// read): see lookedUp
	lookups atomic.Uint64
	// written counts the pages committed since the mapped pages were
	// last dropped after a commit (under mu): see releaseAfterPages
	written int
	lock    *os.File // writer lock; nil when read-only

	db     *bolt.DB
	dbCopy string // OpenReadOnly of a store in use: the private copy read
	copyTx uint64 // the transaction the copy holds
	copyMu sync.Mutex

	// mu serialises the write transactions (update), each of which makes
	// the pending blobs durable with it; flushing is that batch while it
	// runs.
	mu       sync.Mutex
	flushing map[index.Hash]pendingBlob
	// nRecent and nMain count the locations in the recent and main
	// buckets of small blobs' locations (under mu; see locations.go):
	// nRecent counts every put, so it may run ahead
	nRecent, nMain int
	// blobMu: renames of blob files into place hold it shared; GC's
	// deletions and quarantine hold it exclusively.
	blobMu sync.RWMutex

	pendMu    sync.Mutex
	pending   map[index.Hash]pendingBlob // put, not durable yet
	touched   map[index.Hash]struct{}    // put again while unreferenced
	pendBytes int64
	pendFiles int
	pendPeak  int         // the most blobs pending at once since pending was made
	autoFlush atomic.Bool // a put is flushing a full batch (addPending)
	copyBufs  sync.Pool   // the puts' copy buffers (getCopyBuf)
	hashers   sync.Pool   // the puts' hashers (getHasher)
	orphans   atomic.Bool // the orphan sweep ran (once per Open)

	pinMu sync.Mutex
	pins  map[index.Hash]int

	// jobLocks serialise the records of each job (lockJob); undoLeft
	// names the jobs whose failed chunked record could not be undone at
	// once (undoFailed); recording counts the generations being recorded
	// in chunks, during which GC deletes no unreferenced blob (see
	// recordChunkChanges).
	jobLocksMu sync.Mutex
	jobLocks   map[string]*sync.Mutex
	undoLeft   map[string]bool
	recording  atomic.Int32

	// packMu: readers of pack records hold it shared from the lookup of
	// the location to the read; removing a pack holds it exclusively.
	// packFiles are the packs' read handles. The active pack, appended
	// to, belongs to the holder of mu.
	packMu      sync.RWMutex
	packFilesMu sync.Mutex
	packFiles   map[uint32]*os.File
	active      *os.File
	activeN     uint32
	activeSize  int64

	encoders chan *zstd.Encoder
	decoders chan *zstd.Decoder
	sampler  sampler // judges whether large content compresses
}

// Open opens the store in dir for reading and writing, creating dir and its
// layout when missing. It takes the store's writer lock (flock on dir/lock):
// a second writer, in this or another process, gets an error wrapping
// ErrLocked. Leftover temporary files of a crashed writer are removed.
// log may be nil.
func Open(dir string, log *slog.Logger, opts ...Option) (*Store, error) {
	s, err := newStore(dir, log, false, opts)
	if err != nil {
		return nil, err
	}
	if err := mkdirAllSync(dir); err != nil {
		return nil, fmt.Errorf("store %s: %w", dir, err)
	}
	lock, err := lockFile(filepath.Join(dir, "lock"))
	if err != nil {
		return nil, fmt.Errorf("store %s: %w", dir, err)
	}
	s.lock = lock
	if err := s.initLayout(); err != nil {
		if s.db != nil {
			_ = s.db.Close()
		}
		unlockFile(lock)
		return nil, fmt.Errorf("store %s: %w", dir, err)
	}
	s.log.Debug("store opened", "dir", dir)
	return s, nil
}

// OpenReadOnly opens an existing store for reading only, without taking
// the writer lock, so that a CLI can read while the agent runs. Every
// method that writes returns ErrReadOnly. A store that does not exist yet
// gives an error wrapping ErrNotFound.
func OpenReadOnly(dir string, log *slog.Logger, opts ...Option) (*Store, error) {
	s, err := newStore(dir, log, true, opts)
	if err != nil {
		return nil, err
	}
	if err := s.checkFormat(); err != nil {
		return nil, fmt.Errorf("store %s: %w", dir, err)
	}
	if err := s.openReadOnlyDB(); err != nil {
		return nil, fmt.Errorf("store %s: %w", dir, err)
	}
	return s, nil
}

func newStore(dir string, log *slog.Logger, readOnly bool, opts []Option) (*Store, error) {
	if dir == "" {
		return nil, errors.New("store: empty directory name")
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("store %s: %w", dir, err)
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	o := options{gcGrace: DefaultGCGrace, level: DefaultLevel, dbBlobs: dbBlobsBytes}
	for _, f := range opts {
		f(&o)
	}
	// a source's scan stores up to 4 files at once whatever the CPUs
	// (hostmon's readParallel): fewer pooled encoders made a new one
	// (megabytes, zeroed) for every other file
	n := max(min(runtime.GOMAXPROCS(0), 8), minCodecs)
	return &Store{
		dir:       abs,
		log:       log.With("component", "store"),
		opt:       o,
		readOnly:  readOnly,
		pins:      map[index.Hash]int{},
		packFiles: map[uint32]*os.File{},
		pending:   map[index.Hash]pendingBlob{},
		touched:   map[index.Hash]struct{}{},
		encoders:  make(chan *zstd.Encoder, n),
		decoders:  make(chan *zstd.Decoder, n),
		sampler:   sampler{level: o.level},
	}, nil
}

// Dir returns the store's directory (absolute).
func (s *Store) Dir() string { return s.dir }

// Close makes the pending blobs durable, closes the database and releases
// the writer lock and the pooled codecs. Readers of file blobs returned by
// Open stay usable until they are closed. Close is idempotent.
func (s *Store) Close() error {
	var ferr error
	if !s.readOnly && s.usable() == nil && s.db != nil {
		ferr = s.update(nil)
	}
	if s.closed.Swap(true) {
		return nil
	}
	s.ReleaseCodecs()
	s.mu.Lock()
	if s.db != nil {
		if err := s.db.Close(); err != nil && ferr == nil {
			ferr = err
		}
	}
	s.closePacks()
	s.mu.Unlock()
	if s.dbCopy != "" {
		_ = os.Remove(s.dbCopy)
	}
	if s.lock != nil {
		if err := unlockFile(s.lock); err != nil {
			return fmt.Errorf("store %s: release lock: %w", s.dir, err)
		}
	}
	if ferr != nil {
		return fmt.Errorf("store %s: close: %w", s.dir, ferr)
	}
	return nil
}

// update runs fn (nil: nothing but the flush) in one write transaction
// that also makes every pending blob durable: large ones are fsynced and
// renamed into place before it, small ones appended to a pack and fsynced
// before it, and their locations written in it. A recorded generation
// therefore never lacks content.
func (s *Store) update(fn func(tx *bolt.Tx) error) error {
	if err := s.writable(); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.pendMu.Lock()
	batch := make(map[index.Hash]pendingBlob, len(s.pending))
	for h, p := range s.pending {
		batch[h] = p
	}
	touched := s.touched
	s.touched = map[index.Hash]struct{}{}
	s.pendMu.Unlock()
	giveBack := func() {
		s.pendMu.Lock()
		for h := range touched {
			s.touched[h] = struct{}{}
		}
		s.pendMu.Unlock()
	}
	if err := s.dropStored(batch); err != nil {
		giveBack()
		return err
	}
	if err := s.flushFiles(batch); err != nil {
		giveBack()
		return err
	}
	packed, inDB := splitSmall(smallRecs(batch), s.opt.dbBlobs)
	w, err := s.appendPacks(packed)
	if err != nil {
		s.abandonActive()
		giveBack()
		return err
	}
	s.flushing = batch
	var wrote *bolt.Tx
	err = s.db.Update(func(tx *bolt.Tx) error {
		wrote = tx
		if err := writePending(tx, batch, w, touched); err != nil {
			return err
		}
		if err := putInDB(tx, inDB); err != nil {
			return err
		}
		if fn != nil {
			return fn(tx)
		}
		return nil
	})
	s.flushing = nil
	if err != nil {
		s.abandonActive()
		giveBack()
		return err
	}
	st := wrote.Stats()
	s.written += int(st.GetWrite())
	if len(batch) >= releaseAfterBlobs || s.written >= releaseAfterPages {
		// the commits read the old page of every node they rewrote
		// through the map: a batch of blobs touches thousands, and so do
		// a chunk of a large generation's items, a journal, or the many
		// small commits of a fetch
		s.written = 0
		_ = s.releaseMapped()
	}
	s.pendMu.Lock()
	for h, p := range batch {
		if _, ok := s.pending[h]; !ok {
			continue
		}
		delete(s.pending, h)
		if p.file {
			s.pendFiles--
		} else {
			s.pendBytes -= p.size
		}
	}
	if len(s.pending) == 0 && s.pendPeak >= shrinkPendingAt {
		// a Go map keeps its largest size: the tens of thousands of
		// blobs an initial sync's fetch had pending at once stayed
		// allocated while the agent idled
		s.pending, s.pendPeak = map[index.Hash]pendingBlob{}, 0
	}
	s.pendMu.Unlock()
	s.nRecent += len(w.locs)
	if err := s.mergeRecent(); err != nil {
		// what was committed stands; the next commit tries again
		s.log.Warn("cannot merge the recent blob locations into the main ones", "err", err)
	}
	return nil
}

// shrinkPendingAt is the number of blobs pending at once from which the
// pending map is made anew once it is empty.
const shrinkPendingAt = 1024

// ReleaseCodecs closes the pooled compressors and decompressors (about 1
// MiB each, up to one per CPU of each): after a large generation they
// would stay allocated while the agent idles. The next put or read makes
// new ones.
func (s *Store) ReleaseCodecs() {
	s.sampler.release()
	for {
		select {
		case e := <-s.encoders:
			_ = e.Close()
		case d := <-s.decoders:
			d.Close()
		default:
			return
		}
	}
}

// view runs fn in a read transaction.
func (s *Store) view(fn func(tx *bolt.Tx) error) error {
	if err := s.usable(); err != nil {
		return err
	}
	if s.dbCopy != "" {
		if err := s.refreshCopy(); err != nil {
			return err
		}
	}
	return s.db.View(fn)
}

// Sync makes every pending blob durable now (see PutReader).
func (s *Store) Sync() error {
	if err := s.update(nil); err != nil {
		return fmt.Errorf("store %s: sync: %w", s.dir, err)
	}
	return nil
}

func (s *Store) usable() error {
	if s.closed.Load() {
		return fmt.Errorf("store %s: %w", s.dir, ErrClosed)
	}
	return nil
}

func (s *Store) writable() error {
	if err := s.usable(); err != nil {
		return err
	}
	if s.readOnly {
		return fmt.Errorf("store %s: %w", s.dir, ErrReadOnly)
	}
	return nil
}

func (s *Store) blobsDir() string   { return filepath.Join(s.dir, "blobs") }
func (s *Store) tmpDir() string     { return filepath.Join(s.dir, "tmp") }
func (s *Store) jobsDir() string    { return filepath.Join(s.dir, "jobs") }
func (s *Store) corruptDir() string { return filepath.Join(s.dir, "corrupt") }

// checkFormat checks the FORMAT file; a format-1 store gives an error
// wrapping errFormat1 (Open migrates it).
func (s *Store) checkFormat() error {
	b, err := os.ReadFile(filepath.Join(s.dir, "FORMAT"))
	if errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("no store here (FORMAT missing): %w", ErrNotFound)
	}
	if err != nil {
		return err
	}
	switch string(b) {
	case formatLine:
		return nil
	case formatLine1:
		return fmt.Errorf("%w: the store is in format 1; start the agent once to migrate it", errFormat1)
	}
	return fmt.Errorf("FORMAT is %q, this program reads %q", strings.TrimSpace(string(b)), strings.TrimSpace(formatLine))
}

var errFormat1 = errors.New("old store format")

// initLayout creates the directories, the database and the FORMAT file,
// migrates a format-1 store, and removes what a crashed writer left
// behind. Called with the writer lock held.
func (s *Store) initLayout() error {
	for _, d := range []string{s.blobsDir(), s.tmpDir()} {
		if err := mkdirAllSync(d); err != nil {
			return err
		}
	}
	// Every temporary file belongs to a writer, and we are the only one.
	ents, err := os.ReadDir(s.tmpDir())
	if err != nil {
		return err
	}
	for _, e := range ents {
		p := filepath.Join(s.tmpDir(), e.Name())
		if err := os.RemoveAll(p); err != nil {
			return fmt.Errorf("remove leftover %s: %w", p, err)
		}
		s.log.Info("removed leftover temporary file", "path", p)
	}
	ferr := s.checkFormat()
	v1 := errors.Is(ferr, errFormat1)
	switch {
	case errors.Is(ferr, ErrNotFound):
	case v1:
		// A crash during an earlier migration leaves a partial database:
		// start it again from the format-1 files, which it never changed.
		if err := removeIfExists(s.dbPath()); err != nil {
			return err
		}
	case ferr != nil:
		return ferr
	}
	// All 256 blob directories exist (durably) before the first blob file
	// is put, so concurrent renames never race to create one.
	created := false
	for i := range 256 {
		err := os.Mkdir(filepath.Join(s.blobsDir(), fmt.Sprintf("%02x", i)), 0o700)
		if err != nil && !errors.Is(err, fs.ErrExist) {
			return err
		}
		created = created || err == nil
	}
	if created {
		if err := syncDir(s.blobsDir()); err != nil {
			return err
		}
	}
	s.db, err = openDB(s.dbPath(), false, 0)
	if err != nil {
		return err
	}
	if err := initDB(s.db); err != nil {
		return err
	}
	if err := s.initLocations(); err != nil {
		return err
	}
	if err := s.initPacks(); err != nil {
		return err
	}
	if v1 {
		if err := s.migrate1(); err != nil {
			return fmt.Errorf("migrate from format 1: %w", err)
		}
	}
	if ferr != nil {
		if err := writeFileSync(filepath.Join(s.dir, "FORMAT"), []byte(formatLine), s.tmpDir(), false); err != nil {
			return err
		}
	}
	if v1 {
		s.cleanup1()
	} else if _, err := os.Stat(s.jobsDir()); err == nil {
		// a crash during the clean-up after a migration
		s.cleanup1()
	}
	if err := s.migrateBlobsToPacks(); err != nil {
		return err
	}
	return s.undoRecordings()
}

// mkdirAllSync creates dir and its missing parents, fsyncing the parent of
// every directory it creates so that the new entries survive a crash.
func mkdirAllSync(dir string) error {
	if st, err := os.Stat(dir); err == nil {
		if !st.IsDir() {
			return fmt.Errorf("%s is not a directory", dir)
		}
		return nil
	}
	parent := filepath.Dir(dir)
	if parent != dir {
		if err := mkdirAllSync(parent); err != nil {
			return err
		}
	}
	if err := os.Mkdir(dir, 0o700); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return nil
		}
		return err
	}
	return syncDir(parent)
}

// syncDir fsyncs a directory, making renames and creations in it durable.
func syncDir(dir string) error {
	f, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = f.Sync()
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("fsync directory %s: %w", dir, err)
	}
	return nil
}

// writeFileSync writes data to path atomically: a temporary file in tmpDir
// (same file system) is written, fsynced, renamed over path, and path's
// directory is fsynced. A reader sees the old file or the new one, never a
// part. With exclusive, an existing path is left alone.
func writeFileSync(path string, data []byte, tmpDir string, exclusive bool) error {
	if err := os.MkdirAll(tmpDir, 0o700); err != nil {
		return err
	}
	f, err := os.CreateTemp(tmpDir, "meta-*")
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	tmp := f.Name()
	ok := false
	defer func() {
		if !ok {
			_ = f.Close()
			_ = os.Remove(tmp)
		}
	}()
	if _, err := f.Write(data); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("write %s: fsync: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if exclusive {
		if err := os.Link(tmp, path); err != nil && !errors.Is(err, fs.ErrExist) {
			return fmt.Errorf("write %s: %w", path, err)
		}
		_ = os.Remove(tmp)
	} else if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	ok = true
	return syncDir(filepath.Dir(path))
}

// readFileMax reads a whole file of at most max bytes. A missing file gives
// an error wrapping both fs.ErrNotExist and ErrNotFound; a longer file an
// error wrapping ErrCorrupt.
func readFileMax(path string, max int64) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("%w: %w", ErrNotFound, err)
		}
		return nil, err
	}
	defer f.Close()
	var buf bytes.Buffer
	if st, err := f.Stat(); err == nil && st.Size() <= max {
		buf.Grow(int(st.Size()) + 1)
	}
	n, err := buf.ReadFrom(io.LimitReader(f, max+1))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	if n > max {
		return nil, fmt.Errorf("%w: %s is larger than %d bytes", ErrCorrupt, path, max)
	}
	return buf.Bytes(), nil
}

// jobDirName maps a job name to the name of its directory under jobs/.
// Bytes outside [A-Za-z0-9_.-], and a leading '.', are written as %XX, so
// that any name maps to one safe directory name and back.
func jobDirName(job string) (string, error) {
	if job == "" {
		return "", errors.New("empty job name")
	}
	if len(job) > 128 {
		return "", fmt.Errorf("job name %q is longer than 128 bytes", job[:32]+"…")
	}
	var b strings.Builder
	for i := 0; i < len(job); i++ {
		c := job[i]
		safe := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-' || c == '.'
		if safe && !(i == 0 && c == '.') {
			b.WriteByte(c)
		} else {
			fmt.Fprintf(&b, "%%%02X", c)
		}
	}
	return b.String(), nil
}

// jobFromDirName inverts jobDirName; ok is false for names it never makes.
func jobFromDirName(name string) (string, bool) {
	var b strings.Builder
	for i := 0; i < len(name); i++ {
		if name[i] != '%' {
			b.WriteByte(name[i])
			continue
		}
		if i+2 >= len(name) {
			return "", false
		}
		v, err := strconv.ParseUint(name[i+1:i+3], 16, 8)
		if err != nil {
			return "", false
		}
		b.WriteByte(byte(v))
		i += 2
	}
	job := b.String()
	if back, err := jobDirName(job); err != nil || back != name {
		return "", false
	}
	return job, true
}

func (s *Store) jobDir(job string) (string, error) {
	name, err := jobDirName(job)
	if err != nil {
		return "", err
	}
	return filepath.Join(s.jobsDir(), name), nil
}

// Jobs returns the names of the jobs that have anything in the store, sorted.
func (s *Store) Jobs() ([]string, error) {
	var out []string
	err := s.view(func(tx *bolt.Tx) error {
		return tx.Bucket(bktJobs).ForEachBucket(func(k []byte) error {
			out = append(out, string(k))
			return nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("store: list jobs: %w", err)
	}
	return out, nil
}
