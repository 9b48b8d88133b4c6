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
const formatLine = "pbxsync-store 1\n"

// Defaults of the options.
const (
	// DefaultGCGrace is how old an unreferenced blob must be before GC
	// deletes it; it protects blobs put moments ago whose generation is not
	// recorded yet.
	DefaultGCGrace = 15 * time.Minute
	// MaxWindow bounds the zstd window a decoder accepts, so that a hostile
	// frame cannot make the store allocate much memory. The store's own
	// encoder uses an 8 MiB window.
	MaxWindow = 32 << 20
)

// Option changes how Open and OpenReadOnly set up a Store.
type Option func(*options)

type options struct {
	gcGrace time.Duration
	level   zstd.EncoderLevel
}

// WithGCGrace sets how long unreferenced blobs (and temporary files) are
// kept before GC may delete them; the default is DefaultGCGrace. Tests use 0.
func WithGCGrace(d time.Duration) Option { return func(o *options) { o.gcGrace = d } }

// WithCompressionLevel sets the zstd level of new blobs (default
// zstd.SpeedDefault). Every level writes frames that every Store reads.
func WithCompressionLevel(l zstd.EncoderLevel) Option { return func(o *options) { o.level = l } }

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
	lock     *os.File // writer lock; nil when read-only

	// mu guards the metadata under jobs/ (generations, next counters,
	// extras, job state, journals) and is held for all of GC.
	mu sync.RWMutex
	// blobMu: writers of blobs hold it shared around "exists? / rename";
	// GC's sweep and quarantine hold it exclusively.
	blobMu sync.RWMutex

	pinMu sync.Mutex
	pins  map[index.Hash]int

	encoders chan *zstd.Encoder
	decoders chan *zstd.Decoder
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
	o := options{gcGrace: DefaultGCGrace, level: zstd.SpeedDefault}
	for _, f := range opts {
		f(&o)
	}
	n := min(runtime.GOMAXPROCS(0), 8)
	return &Store{
		dir:      abs,
		log:      log.With("component", "store"),
		opt:      o,
		readOnly: readOnly,
		pins:     map[index.Hash]int{},
		encoders: make(chan *zstd.Encoder, n),
		decoders: make(chan *zstd.Decoder, n),
	}, nil
}

// Dir returns the store's directory (absolute).
func (s *Store) Dir() string { return s.dir }

// Close releases the writer lock and the pooled codecs. Readers returned by
// Open stay usable until they are closed. Close is idempotent.
func (s *Store) Close() error {
	if s.closed.Swap(true) {
		return nil
	}
	for {
		select {
		case e := <-s.encoders:
			_ = e.Close()
			continue
		case d := <-s.decoders:
			d.Close()
			continue
		default:
		}
		break
	}
	if s.lock != nil {
		if err := unlockFile(s.lock); err != nil {
			return fmt.Errorf("store %s: release lock: %w", s.dir, err)
		}
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

func (s *Store) checkFormat() error {
	b, err := os.ReadFile(filepath.Join(s.dir, "FORMAT"))
	if errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("no store here (FORMAT missing): %w", ErrNotFound)
	}
	if err != nil {
		return err
	}
	if string(b) != formatLine {
		return fmt.Errorf("FORMAT is %q, this program reads %q", strings.TrimSpace(string(b)), strings.TrimSpace(formatLine))
	}
	return nil
}

// initLayout creates the directories and FORMAT file and removes what a
// crashed writer left behind. Called with the writer lock held.
func (s *Store) initLayout() error {
	if err := s.checkFormat(); errors.Is(err, ErrNotFound) {
		if err := writeFileSync(filepath.Join(s.dir, "FORMAT"), []byte(formatLine), s.tmpDir(), true); err != nil {
			return err
		}
	} else if err != nil {
		return err
	}
	for _, d := range []string{s.blobsDir(), s.tmpDir(), s.jobsDir()} {
		if err := mkdirAllSync(d); err != nil {
			return err
		}
	}
	// All 256 blob directories exist (durably) before the first Put, so
	// concurrent Puts never race to create one.
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
	return nil
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
	if err := s.usable(); err != nil {
		return nil, err
	}
	ents, err := os.ReadDir(s.jobsDir())
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("store: list jobs: %w", err)
	}
	var out []string
	for _, e := range ents {
		if !e.IsDir() {
			continue
		}
		if job, ok := jobFromDirName(e.Name()); ok {
			out = append(out, job)
		}
	}
	return out, nil
}
