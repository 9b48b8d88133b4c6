package store

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/klauspost/compress/zstd"

	"pbxsync/internal/index"
)

const ioBuf = 256 << 10

// BlobPath returns where the blob h lives (whether or not it exists). It is
// for diagnostics; read blobs through Open or OpenCompressed.
func (s *Store) BlobPath(h index.Hash) string {
	hx := h.String()
	return filepath.Join(s.blobsDir(), hx[:2], hx)
}

// ctxReader fails reads once ctx is done, so long copies stop promptly.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}

func (s *Store) getEncoder(w io.Writer) (*zstd.Encoder, error) {
	select {
	case e := <-s.encoders:
		e.Reset(w)
		return e, nil
	default:
	}
	return zstd.NewWriter(w,
		zstd.WithEncoderLevel(s.opt.level),
		zstd.WithEncoderConcurrency(1),
		zstd.WithEncoderCRC(true),
		zstd.WithZeroFrames(true),
		zstd.WithWindowSize(8<<20),
	)
}

func (s *Store) putEncoder(e *zstd.Encoder) {
	e.Reset(io.Discard) // drop the reference to the old writer
	if s.closed.Load() {
		_ = e.Close()
		return
	}
	select {
	case s.encoders <- e:
	default:
		_ = e.Close()
	}
}

func (s *Store) getDecoder(r io.Reader) (*zstd.Decoder, error) {
	select {
	case d := <-s.decoders:
		if err := d.Reset(r); err != nil {
			d.Close()
			return nil, err
		}
		return d, nil
	default:
	}
	return zstd.NewReader(r,
		zstd.WithDecoderConcurrency(1),
		zstd.WithDecoderLowmem(true),
		zstd.WithDecoderMaxWindow(MaxWindow),
	)
}

func (s *Store) putDecoder(d *zstd.Decoder) {
	if err := d.Reset(nil); err != nil || s.closed.Load() {
		d.Close()
		return
	}
	select {
	case s.decoders <- d:
	default:
		d.Close()
	}
}

// newTemp creates a temporary file under tmp/ for a blob being written.
func (s *Store) newTemp() (*os.File, error) {
	f, err := os.CreateTemp(s.tmpDir(), "blob-*")
	if err != nil {
		return nil, fmt.Errorf("store: create temporary blob: %w", err)
	}
	return f, nil
}

// PutReader stores everything r yields as one blob and returns its hash
// (of the uncompressed content) and size. The content streams through the
// hasher and a zstd encoder into a temporary file, which is fsynced and
// renamed to its hash name; when that blob exists already the temporary
// file is dropped and the existing blob's mtime is refreshed (see GC).
// Memory use does not depend on the size of the content.
func (s *Store) PutReader(ctx context.Context, r io.Reader) (index.Hash, int64, error) {
	if err := s.writable(); err != nil {
		return index.Hash{}, 0, err
	}
	f, err := s.newTemp()
	if err != nil {
		return index.Hash{}, 0, err
	}
	committed := false
	defer func() {
		if !committed {
			_ = f.Close()
			_ = os.Remove(f.Name())
		}
	}()
	bw := bufio.NewWriterSize(f, ioBuf)
	enc, err := s.getEncoder(bw)
	if err != nil {
		return index.Hash{}, 0, fmt.Errorf("store: zstd encoder: %w", err)
	}
	h := index.NewHasher()
	n, err := io.CopyBuffer(&teeWriter{a: enc, b: h}, ctxReader{ctx, r}, make([]byte, ioBuf))
	if err == nil {
		err = enc.Close()
	}
	s.putEncoder(enc)
	if err != nil {
		return index.Hash{}, n, fmt.Errorf("store: put blob: %w", err)
	}
	sum := h.Sum()
	if err := bw.Flush(); err != nil {
		return sum, n, fmt.Errorf("store: put blob %s: %w", sum, err)
	}
	if err := s.commitBlob(f, sum); err != nil {
		return sum, n, err
	}
	committed = true
	return sum, n, nil
}

// teeWriter writes to a then b; io.MultiWriter without the slice.
type teeWriter struct{ a, b io.Writer }

func (t *teeWriter) Write(p []byte) (int, error) {
	if n, err := t.a.Write(p); err != nil {
		return n, err
	}
	return t.b.Write(p)
}

// commitBlob fsyncs and closes the temporary file f and moves it to the
// name of h, unless that blob exists already. On success f is gone from
// tmp/ either way.
func (s *Store) commitBlob(f *os.File, h index.Hash) error {
	if err := f.Sync(); err != nil {
		return fmt.Errorf("store: put blob %s: fsync: %w", h, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("store: put blob %s: %w", h, err)
	}
	s.blobMu.RLock()
	defer s.blobMu.RUnlock()
	final := s.BlobPath(h)
	if st, err := os.Stat(final); err == nil && st.Mode().IsRegular() {
		_ = os.Remove(f.Name())
		now := time.Now()
		if err := os.Chtimes(final, now, now); err != nil {
			s.log.Warn("refresh blob mtime", "blob", h.String(), "err", err)
		}
		return nil
	}
	dir := filepath.Dir(final) // made by Open
	if err := os.Rename(f.Name(), final); err != nil {
		return fmt.Errorf("store: put blob %s: %w", h, err)
	}
	if err := syncDir(dir); err != nil {
		return fmt.Errorf("store: put blob %s: %w", h, err)
	}
	return nil
}

// PutFile stores the content of the file at path. It hashes the file first
// and skips compressing it when the blob exists already; otherwise it
// stores it like PutReader (and returns the hash of what it read the second
// time, should the file change in between).
func (s *Store) PutFile(ctx context.Context, path string) (index.Hash, int64, error) {
	if err := s.writable(); err != nil {
		return index.Hash{}, 0, err
	}
	f, err := os.Open(path)
	if err != nil {
		return index.Hash{}, 0, fmt.Errorf("store: put file: %w", err)
	}
	defer f.Close()
	h, n, err := index.HashReader(ctxReader{ctx, f})
	if err != nil {
		return index.Hash{}, 0, fmt.Errorf("store: put file %s: %w", path, err)
	}
	if s.touchIfExists(h) {
		return h, n, nil
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return index.Hash{}, 0, fmt.Errorf("store: put file %s: %w", path, err)
	}
	h, n, err = s.PutReader(ctx, f)
	if err != nil {
		return h, n, fmt.Errorf("store: put file %s: %w", path, err)
	}
	return h, n, nil
}

// touchIfExists refreshes the mtime of blob h and reports whether it exists.
func (s *Store) touchIfExists(h index.Hash) bool {
	s.blobMu.RLock()
	defer s.blobMu.RUnlock()
	now := time.Now()
	return os.Chtimes(s.BlobPath(h), now, now) == nil
}

// PutCompressed stores a blob received as a zstd stream (the frames the
// store itself writes and OpenCompressed returns). The stream is written
// as-is to a temporary file while it is decompressed and hashed; only when
// it decodes cleanly, its content is at most maxSize bytes and hashes to
// want is it renamed into place. Otherwise nothing is left behind and the
// error wraps ErrCorrupt and names want. maxSize bounds the decompressed
// size (pass the item's size; it stops zip bombs); the compressed input is
// bounded to a little more than maxSize as well. The result is the
// decompressed size.
func (s *Store) PutCompressed(ctx context.Context, r io.Reader, want index.Hash, maxSize int64) (int64, error) {
	if err := s.writable(); err != nil {
		return 0, err
	}
	if maxSize < 0 {
		return 0, fmt.Errorf("store: put compressed blob %s: negative maxSize %d", want, maxSize)
	}
	f, err := s.newTemp()
	if err != nil {
		return 0, err
	}
	committed := false
	defer func() {
		if !committed {
			_ = f.Close()
			_ = os.Remove(f.Name())
		}
	}()
	bw := bufio.NewWriterSize(f, ioBuf)
	// zstd never grows data by more than a few bytes per 128 KiB block plus
	// frame headers; skippable frames count here too.
	in := &teeReader{r: ctxReader{ctx, r}, w: bw, max: maxSize + maxSize/64 + 64<<10}
	dec, err := s.getDecoder(in)
	if err != nil {
		return 0, fmt.Errorf("store: put compressed blob %s: zstd decoder: %w", want, err)
	}
	h := index.NewHasher()
	out := &boundedWriter{w: h, left: maxSize}
	n, err := io.CopyBuffer(out, struct{ io.Reader }{dec}, make([]byte, ioBuf))
	s.putDecoder(dec)
	if err == nil {
		// The decoder stops at the end of the input; anything still
		// unread would be stored unverified.
		var extra int64
		extra, err = io.Copy(io.Discard, in)
		if err == nil && extra > 0 {
			err = fmt.Errorf("%w: %d bytes after the last frame", ErrCorrupt, extra)
		}
	}
	switch {
	case err == nil:
	case in.over:
		return n, fmt.Errorf("%w: blob %s: compressed stream exceeds %d bytes for maxSize %d", ErrCorrupt, want, in.max, maxSize)
	case out.over:
		return n, fmt.Errorf("%w: blob %s: decompressed content exceeds maxSize %d", ErrCorrupt, want, maxSize)
	case in.rerr != nil:
		// The peer's stream failed (network, ctx): not corruption.
		return n, fmt.Errorf("store: put compressed blob %s: read: %w", want, in.rerr)
	case in.werr != nil:
		return n, fmt.Errorf("store: put compressed blob %s: write: %w", want, in.werr)
	case errors.Is(err, ErrCorrupt):
		return n, fmt.Errorf("store: blob %s: %w", want, err)
	default:
		return n, fmt.Errorf("%w: blob %s: bad zstd stream: %v", ErrCorrupt, want, err)
	}
	if got := h.Sum(); got != want {
		return n, fmt.Errorf("%w: blob %s: received content hashes to %s", ErrCorrupt, want, got)
	}
	if err := bw.Flush(); err != nil {
		return n, fmt.Errorf("store: put compressed blob %s: %w", want, err)
	}
	if err := s.commitBlob(f, want); err != nil {
		return n, err
	}
	committed = true
	return n, nil
}

// teeReader copies what it reads from r to w, fails after max bytes, and
// records why it failed.
type teeReader struct {
	r    io.Reader
	w    io.Writer
	max  int64
	read int64
	over bool  // more than max bytes
	rerr error // r's error, io.EOF excluded
	werr error // w's error
}

var errTooLarge = errors.New("too large")

func (t *teeReader) Read(p []byte) (int, error) {
	if t.read >= t.max {
		var one [1]byte
		if n, _ := io.ReadFull(t.r, one[:]); n > 0 {
			t.over = true
			return 0, errTooLarge
		}
		return 0, io.EOF
	}
	if int64(len(p)) > t.max-t.read {
		p = p[:t.max-t.read]
	}
	n, err := t.r.Read(p)
	t.read += int64(n)
	if err != nil && err != io.EOF {
		t.rerr = err
	}
	if n > 0 {
		if _, werr := t.w.Write(p[:n]); werr != nil {
			t.werr = werr
			return n, werr
		}
	}
	return n, err
}

// boundedWriter fails past left bytes.
type boundedWriter struct {
	w    io.Writer
	left int64
	over bool
}

func (b *boundedWriter) Write(p []byte) (int, error) {
	if int64(len(p)) > b.left {
		b.over = true
		return 0, errTooLarge
	}
	b.left -= int64(len(p))
	return b.w.Write(p)
}

// Has reports whether blob h is in the store. It does not read the blob;
// use Verify for that.
func (s *Store) Has(h index.Hash) bool {
	if s.usable() != nil {
		return false
	}
	st, err := os.Stat(s.BlobPath(h))
	return err == nil && st.Mode().IsRegular()
}

// Open returns the decompressed content of blob h. The reader hashes what
// it returns: the Read that reaches the end returns an error wrapping
// ErrCorrupt (naming the blob) instead of io.EOF when the content does not
// hash to h, and a damaged frame fails the same way earlier; bytes read
// before such an error must be discarded. In a writable store a blob found
// corrupt is moved to corrupt/ so that it can be fetched again. A missing
// blob gives an error wrapping ErrNotFound. Reads fail once ctx is done.
func (s *Store) Open(ctx context.Context, h index.Hash) (io.ReadCloser, error) {
	if err := s.usable(); err != nil {
		return nil, err
	}
	f, err := os.Open(s.BlobPath(h))
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("store: blob %s: %w", h, ErrNotFound)
		}
		return nil, fmt.Errorf("store: blob %s: %w", h, err)
	}
	bufSize := 64 << 10
	if st, err := f.Stat(); err == nil && st.Size() < int64(bufSize) {
		bufSize = max(int(st.Size()), 512)
	}
	src := &errReader{r: bufio.NewReaderSize(f, bufSize)}
	dec, err := s.getDecoder(src)
	if err != nil {
		_ = f.Close()
		return nil, fmt.Errorf("store: blob %s: zstd decoder: %w", h, err)
	}
	return &blobReader{s: s, ctx: ctx, h: h, f: f, src: src, dec: dec, hasher: index.NewHasher()}, nil
}

// errReader records the error of the file under the decoder, to tell an
// I/O error from a damaged frame.
type errReader struct {
	r   io.Reader
	err error
}

func (e *errReader) Read(p []byte) (int, error) {
	n, err := e.r.Read(p)
	if err != nil && err != io.EOF {
		e.err = err
	}
	return n, err
}

type blobReader struct {
	s      *Store
	ctx    context.Context
	h      index.Hash
	f      *os.File
	src    *errReader
	dec    *zstd.Decoder
	hasher *index.Hasher
	n      int64
	err    error // sticky
}

func (b *blobReader) Read(p []byte) (int, error) {
	if b.err != nil {
		return 0, b.err
	}
	if b.dec == nil {
		return 0, fmt.Errorf("store: blob %s: read after close", b.h)
	}
	if err := b.ctx.Err(); err != nil {
		return 0, err
	}
	n, err := b.dec.Read(p)
	if n > 0 {
		b.hasher.Write(p[:n])
		b.n += int64(n)
	}
	switch {
	case err == nil:
		return n, nil
	case err == io.EOF:
		if got := b.hasher.Sum(); got != b.h {
			b.err = fmt.Errorf("%w: blob %s (%s): content hashes to %s", ErrCorrupt, b.h, b.s.BlobPath(b.h), got)
			b.s.quarantine(b.h, b.f, b.err)
		} else {
			b.err = io.EOF
		}
	case b.src.err != nil:
		b.err = fmt.Errorf("store: blob %s: read: %w", b.h, b.src.err)
	default:
		b.err = fmt.Errorf("%w: blob %s (%s): bad zstd frame after %d bytes: %v", ErrCorrupt, b.h, b.s.BlobPath(b.h), b.n, err)
		b.s.quarantine(b.h, b.f, b.err)
	}
	return n, b.err
}

func (b *blobReader) Close() error {
	if b.dec == nil {
		return nil
	}
	b.s.putDecoder(b.dec)
	b.dec = nil
	return b.f.Close()
}

// quarantine moves a blob found corrupt to corrupt/<hash>-<unixnano>, so a
// later Put or PutCompressed can store a good copy. Only in a writable
// store, and only when the file at the blob's path is still the one read.
func (s *Store) quarantine(h index.Hash, f *os.File, why error) {
	s.log.Error("corrupt blob", "blob", h.String(), "err", why)
	if s.readOnly || s.closed.Load() {
		return
	}
	s.blobMu.Lock()
	defer s.blobMu.Unlock()
	path := s.BlobPath(h)
	st1, err1 := f.Stat()
	st2, err2 := os.Stat(path)
	if err1 != nil || err2 != nil || !os.SameFile(st1, st2) {
		return
	}
	if err := mkdirAllSync(s.corruptDir()); err != nil {
		s.log.Error("quarantine corrupt blob", "blob", h.String(), "err", err)
		return
	}
	dst := filepath.Join(s.corruptDir(), fmt.Sprintf("%s-%d", h, time.Now().UnixNano()))
	if err := os.Rename(path, dst); err != nil {
		s.log.Error("quarantine corrupt blob", "blob", h.String(), "err", err)
		return
	}
	_ = syncDir(filepath.Dir(path))
	s.log.Warn("corrupt blob moved aside; it must be fetched again", "blob", h.String(), "to", dst)
}

// OpenCompressed returns the stored zstd stream of blob h as it is on disk,
// and its length, for sending to a peer; the receiver verifies it with
// PutCompressed. A missing blob gives an error wrapping ErrNotFound.
func (s *Store) OpenCompressed(h index.Hash) (io.ReadCloser, int64, error) {
	if err := s.usable(); err != nil {
		return nil, 0, err
	}
	f, err := os.Open(s.BlobPath(h))
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, 0, fmt.Errorf("store: blob %s: %w", h, ErrNotFound)
		}
		return nil, 0, fmt.Errorf("store: blob %s: %w", h, err)
	}
	st, err := f.Stat()
	if err != nil {
		_ = f.Close()
		return nil, 0, fmt.Errorf("store: blob %s: %w", h, err)
	}
	return f, st.Size(), nil
}

// CopyTo writes the verified content of blob h to w. On ErrCorrupt, w has
// received bytes that must be discarded.
func (s *Store) CopyTo(ctx context.Context, h index.Hash, w io.Writer) error {
	rc, err := s.Open(ctx, h)
	if err != nil {
		return err
	}
	defer rc.Close()
	if _, err := io.CopyBuffer(w, rc, make([]byte, ioBuf)); err != nil {
		if errors.Is(err, ErrCorrupt) || errors.Is(err, ErrNotFound) {
			return err
		}
		return fmt.Errorf("store: copy blob %s: %w", h, err)
	}
	return nil
}

// Verify reads blob h completely and checks its hash; a damaged blob gives
// an error wrapping ErrCorrupt (and, in a writable store, is moved aside).
func (s *Store) Verify(ctx context.Context, h index.Hash) error {
	return s.CopyTo(ctx, h, io.Discard)
}
