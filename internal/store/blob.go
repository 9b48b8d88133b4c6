package store

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"github.com/klauspost/compress/zstd"
	bolt "go.etcd.io/bbolt"

	"pbxsync/internal/directio"
	"pbxsync/internal/index"
)

// SmallBlob is the largest compressed blob kept in a pack file (see
// pack.go); larger ones are files under blobs/.
const SmallBlob = 64 << 10

// Batches of new blobs: Puts collect them in memory (small ones) and in
// tmp/ (large ones, not yet fsynced); the next metadata transaction, or a
// Put that finds more than these pending, makes them durable together:
// the large files fsynced in parallel and renamed into place, the small
// ones appended to a pack and fsynced, their locations written in one
// commit. (When small blobs were values in the database, each rewrote a
// leaf page held in memory until the commit: a batch of 8 MiB took ~50
// MB of heap at once; with packs a location is 24 bytes, and 4 MiB stays.)
const (
	flushPendingBytes = 4 << 20
	flushPendingFiles = 64
	syncParallel      = 8
)

// pendingBlob is a blob put but not durable yet.
type pendingBlob struct {
	data []byte // a small blob's zstd frame
	tmp  string // a large blob's file under tmp/ (closed, not fsynced)
	size int64  // compressed size
	file bool   // a large blob (counted in pendFiles)
	// stored: the store held the blob durably already (put again: see
	// dropStored); set on the batch's copy during its flush
	stored bool
}

// BlobPath returns where blob h lives when it is a file (whether or not it
// exists; small blobs live in pack files). It is for diagnostics; read
// blobs through Open or OpenCompressed.
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

// encoderWindow is the window of the store's encoder. Its history buffer
// is what a pooled encoder holds (~2× the window once it has compressed
// more than the window): with 8 MiB, three encoders of a source's scan held
// 48 MB of a 64 MB live heap (peak RSS 145-150 MiB for the 20-file mixed
// tree). A 22 MiB generated dialplan compresses to 0.068 of its size with
// 1 MiB and 0.069 with 8 MiB, in less CPU (see docs/performance.md, eighth
// pass: large files); configuration files are far smaller than either.
const encoderWindow = 1 << 20

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
		zstd.WithWindowSize(encoderWindow),
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

// teeWriter writes to a then b; io.MultiWriter without the slice.
type teeWriter struct{ a, b io.Writer }

func (t *teeWriter) Write(p []byte) (int, error) {
	if n, err := t.a.Write(p); err != nil {
		return n, err
	}
	return t.b.Write(p)
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

// errWriter records the error of w.
type errWriter struct {
	w   io.Writer
	err error
}

func (e *errWriter) Write(p []byte) (int, error) {
	n, err := e.w.Write(p)
	if err != nil {
		e.err = err
	}
	return n, err
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

// spillWriter keeps what it is given in memory up to SmallBlob bytes and
// moves it to a temporary file under tmp/ beyond that, written around the
// page cache (see internal/directio: the store reads a large blob seldom,
// and a page cached for each of its pages cost more system time than the
// rest of the put).
type spillWriter struct {
	s    *Store
	buf  bytes.Buffer
	f    *os.File
	bw   *directio.Writer
	n    int64
	size int64 // about how large the blob will be (≤ 0: unknown)
}

func (w *spillWriter) Write(p []byte) (int, error) {
	w.n += int64(len(p))
	if w.f == nil && w.buf.Len()+len(p) <= SmallBlob {
		return w.buf.Write(p)
	}
	if w.f == nil {
		f, err := os.CreateTemp(w.s.tmpDir(), "blob-*")
		if err != nil {
			return 0, fmt.Errorf("create temporary blob: %w", err)
		}
		w.f, w.bw = f, directio.NewWriter(f, w.size)
		if _, err := w.bw.Write(w.buf.Bytes()); err != nil {
			return 0, err
		}
		w.buf = bytes.Buffer{}
	}
	return w.bw.Write(p)
}

// discard drops what was written.
func (w *spillWriter) discard() {
	if w.f != nil {
		_ = w.f.Close()
		_ = os.Remove(w.f.Name())
		w.f = nil
	}
}

// commit hands the written blob h to the store as pending. Whether the
// store holds it durably already is not looked up here (a database
// lookup and a stat for every blob put, in random order) but when the
// batch is flushed, in hash order (see dropStored); a blob pending
// already is dropped at once (addPending).
func (w *spillWriter) commit(h index.Hash) error {
	p := pendingBlob{size: w.n}
	if w.f == nil {
		p.data = bytes.Clone(w.buf.Bytes())
	} else {
		if err := w.bw.Flush(); err != nil {
			w.discard()
			return fmt.Errorf("store: put blob %s: %w", h, err)
		}
		if err := w.f.Close(); err != nil {
			_ = os.Remove(w.f.Name())
			return fmt.Errorf("store: put blob %s: %w", h, err)
		}
		p.tmp, p.file = w.f.Name(), true
		w.f = nil
	}
	return w.s.addPending(h, p)
}

// addPending records a new blob as pending and flushes the batch when it
// is large enough.
func (s *Store) addPending(h index.Hash, p pendingBlob) error {
	s.pendMu.Lock()
	if old, dup := s.pending[h]; dup {
		s.pendMu.Unlock()
		if p.tmp != "" && p.tmp != old.tmp {
			_ = os.Remove(p.tmp)
		}
		return nil
	}
	s.pending[h] = p
	s.pendPeak = max(s.pendPeak, len(s.pending))
	if p.file {
		s.pendFiles++
	} else {
		s.pendBytes += p.size
	}
	full := s.pendBytes >= flushPendingBytes || s.pendFiles >= flushPendingFiles
	s.pendMu.Unlock()
	// one put flushes a full batch while the others go on adding to the
	// next: the batch stays full until its commit, so each of them would
	// otherwise wait for it and then commit the few blobs put meanwhile,
	// with two fsyncs of its own (eight fetch workers: eight commits
	// where one was due)
	if full && s.autoFlush.CompareAndSwap(false, true) {
		defer s.autoFlush.Store(false)
		if err := s.update(nil); err != nil {
			return fmt.Errorf("store: put blob %s: %w", h, err)
		}
	}
	return nil
}

// touch marks an existing, unreferenced blob as put again now, so GC's
// grace period starts over (see GC).
func (s *Store) touch(h index.Hash) {
	s.pendMu.Lock()
	defer s.pendMu.Unlock()
	if _, ok := s.pending[h]; !ok {
		s.touched[h] = struct{}{}
	}
}

// PutReader stores everything r yields as one blob and returns its hash
// (of the uncompressed content) and size. The content streams through the
// hasher and a zstd encoder (or, when it does not compress, into a frame of
// raw blocks: see rawframe.go) into memory (small blobs) or a temporary file;
// the blob is pending until the next metadata write, or until enough are
// pending, makes a batch durable (see the package documentation). When
// the blob exists already it is dropped and GC's grace period for it
// starts over. Memory use does not depend on the size of the content.
func (s *Store) PutReader(ctx context.Context, r io.Reader) (index.Hash, int64, error) {
	if err := s.writable(); err != nil {
		return index.Hash{}, 0, err
	}
	w := &spillWriter{s: s}
	enc, err := s.getEncoder(w)
	if err != nil {
		return index.Hash{}, 0, fmt.Errorf("store: zstd encoder: %w", err)
	}
	h := s.getHasher()
	aw := newAdaptiveWriter(enc, &s.sampler, w)
	buf := s.getCopyBuf()
	n, err := io.CopyBuffer(&teeWriter{a: aw, b: h}, ctxReader{ctx, r}, buf[:])
	s.putCopyBuf(buf)
	if err == nil {
		err = aw.Close()
	}
	s.putEncoder(enc)
	sum := h.Sum()
	s.putHasher(h)
	if err != nil {
		w.discard()
		return index.Hash{}, n, fmt.Errorf("store: put blob: %w", err)
	}
	if err := w.commit(sum); err != nil {
		return sum, n, err
	}
	return sum, n, nil
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
	if s.exists(h) {
		s.touch(h)
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

// PutCompressed stores a blob received as a zstd stream (the frames the
// store itself writes and OpenCompressed returns). The stream is kept
// as-is while it is decompressed and hashed; only when it decodes cleanly,
// its content is at most maxSize bytes and hashes to want is it added to
// the store (pending, like PutReader). Otherwise nothing is left behind
// and the error wraps ErrCorrupt and names want. maxSize bounds the
// decompressed size (pass the item's size; it stops zip bombs); the
// compressed input is bounded to a little more than maxSize as well. The
// result is the decompressed size.
func (s *Store) PutCompressed(ctx context.Context, r io.Reader, want index.Hash, maxSize int64) (int64, error) {
	return s.putCompressed(ctx, r, want, maxSize, nil)
}

// PutCompressedTee is PutCompressed that also writes the decompressed
// content to also as it is decoded (one pass, for a caller that needs a
// copy of it elsewhere: a target staging a file it fetches). Only when it
// returns no error did also receive exactly the content that hashes to
// want; otherwise what it received must be discarded.
func (s *Store) PutCompressedTee(ctx context.Context, r io.Reader, want index.Hash, maxSize int64, also io.Writer) (int64, error) {
	return s.putCompressed(ctx, r, want, maxSize, also)
}

func (s *Store) putCompressed(ctx context.Context, r io.Reader, want index.Hash, maxSize int64, also io.Writer) (int64, error) {
	if err := s.writable(); err != nil {
		return 0, err
	}
	if maxSize < 0 {
		return 0, fmt.Errorf("store: put compressed blob %s: negative maxSize %d", want, maxSize)
	}
	w := &spillWriter{s: s, size: maxSize}
	committed := false
	defer func() {
		if !committed {
			w.discard()
		}
	}()
	// zstd never grows data by more than a few bytes per 128 KiB block plus
	// frame headers; skippable frames count here too.
	in := &teeReader{r: ctxReader{ctx, r}, w: w, max: maxSize + maxSize/64 + 64<<10}
	h := s.getHasher()
	defer s.putHasher(h)
	var sink io.Writer = h
	var copyTo *errWriter
	if also != nil {
		copyTo = &errWriter{w: also}
		sink = &teeWriter{a: h, b: copyTo}
	}
	out := &boundedWriter{w: sink, left: maxSize}
	buf := s.getCopyBuf()
	n, err := s.decodeInto(out, in, buf[:])
	s.putCopyBuf(buf)
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
	case copyTo != nil && copyTo.err != nil:
		return n, fmt.Errorf("store: put compressed blob %s: write the copy: %w", want, copyTo.err)
	case errors.Is(err, ErrCorrupt):
		return n, fmt.Errorf("store: blob %s: %w", want, err)
	default:
		return n, fmt.Errorf("%w: blob %s: bad zstd stream: %v", ErrCorrupt, want, err)
	}
	if got := h.Sum(); got != want {
		return n, fmt.Errorf("%w: blob %s: received content hashes to %s", ErrCorrupt, want, got)
	}
	committed = true
	if err := w.commit(want); err != nil {
		return n, err
	}
	return n, nil
}

// decodeInto writes the content of the zstd stream in to out: a raw frame
// as the store writes it (audio) block by block (copyRawFrame: one copy,
// no decoder), anything else through a decoder.
func (s *Store) decodeInto(out io.Writer, in io.Reader, buf []byte) (int64, error) {
	head := make([]byte, len(rawFrameHeader))
	k, err := io.ReadFull(in, head)
	if err == nil && bytes.Equal(head, rawFrameHeader) {
		return copyRawFrame(out, in, buf)
	}
	dec, derr := s.getDecoder(io.MultiReader(bytes.NewReader(head[:k]), in))
	if derr != nil {
		return 0, fmt.Errorf("zstd decoder: %w", derr)
	}
	defer s.putDecoder(dec)
	return io.CopyBuffer(out, struct{ io.Reader }{dec}, buf)
}

// flushFiles makes the pending large blobs of batch durable and puts them
// in place: fsyncs in parallel, renames, then one fsync per blob
// directory touched. Called with s.mu held, before the transaction that
// records them.
func (s *Store) flushFiles(batch map[index.Hash]pendingBlob) error {
	var files []index.Hash
	for h, p := range batch {
		if p.tmp != "" {
			files = append(files, h)
		}
	}
	if len(files) == 0 {
		return nil
	}
	errs := make([]error, len(files))
	var wg sync.WaitGroup
	sem := make(chan struct{}, syncParallel)
	for i, h := range files {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			errs[i] = fsyncFile(batch[h].tmp)
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return err
	}
	dirs := map[string]struct{}{}
	s.blobMu.RLock()
	s.pendMu.Lock()
	for _, h := range files {
		p := batch[h]
		final := s.BlobPath(h)
		if fileExists(final) {
			_ = os.Remove(p.tmp)
			p.stored = true
		} else if err := os.Rename(p.tmp, final); err != nil {
			s.pendMu.Unlock()
			s.blobMu.RUnlock()
			return fmt.Errorf("blob %s: %w", h, err)
		}
		p.tmp = ""
		batch[h] = p
		if cur, ok := s.pending[h]; ok && cur.tmp != "" {
			cur.tmp = "" // in place now: read from blobs/
			s.pending[h] = cur
		}
		dirs[filepath.Dir(final)] = struct{}{}
	}
	s.pendMu.Unlock()
	s.blobMu.RUnlock()
	errs = errs[:0]
	var mu sync.Mutex
	for d := range dirs {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			if err := syncDir(d); err != nil {
				mu.Lock()
				errs = append(errs, err)
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

func fsyncFile(path string) error {
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return err
	}
	err = f.Sync()
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("fsync %s: %w", path, err)
	}
	return nil
}

// dropStored empties the entries of batch whose blob the store holds
// durably already (put again: see spillWriter.commit), so that the flush
// writes them nowhere; they stay in batch for writePending, which starts
// GC's grace period of an unreferenced one over, as for a touched blob.
// The lookups go in hash order. Called with s.mu held, before the flush.
func (s *Store) dropStored(batch map[index.Hash]pendingBlob) error {
	var have []index.Hash
	hs := sortedHashes(batch)
	files := s.newBlobFiles(hs)
	err := s.db.View(func(tx *bolt.Tx) error {
		pass := mappedPass{tx: tx}
		small := newSmallLookup(tx)
		for _, h := range hs {
			pass.touched()
			if small.has(h) || files.exists(h) {
				have = append(have, h)
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	if len(have) == 0 {
		return nil
	}
	s.pendMu.Lock()
	defer s.pendMu.Unlock()
	for _, h := range have {
		p := batch[h]
		if p.tmp != "" {
			_ = os.Remove(p.tmp)
			if cur, ok := s.pending[h]; ok && cur.tmp == p.tmp {
				cur.tmp = "" // readers find the stored blob
				s.pending[h] = cur
			}
		}
		p.data, p.tmp, p.stored = nil, "", true
		batch[h] = p
	}
	return nil
}

// smallRecs returns the small blobs of batch as pack records, in hash
// order.
func smallRecs(batch map[index.Hash]pendingBlob) []packRec {
	var recs []packRec
	for _, h := range sortedHashes(batch) {
		if p := batch[h]; p.data != nil {
			recs = append(recs, packRec{h: h, data: p.data})
		}
	}
	return recs
}

// writePending adds the batch to the database in tx: the locations of the
// small blobs appendPacks wrote (w); the new blobs nobody refers to as a
// row of bucket fresh; the blobs the store held already (put again) and
// the touched ones into unref with a new time unless referenced.
func writePending(tx *bolt.Tx, batch map[index.Hash]pendingBlob, w packWrite, touched map[index.Hash]struct{}) error {
	refs, unref := tx.Bucket(bktRefs), tx.Bucket(bktUnref)
	refs.FillPercent, unref.FillPercent = fillPercent, fillPercent
	// w holds no blob the store had: dropStored took them out of the
	// batch, under s.mu like every write
	if err := recordPackWrite(tx, w, nil); err != nil {
		return err
	}
	now := u64key(uint64(time.Now().UnixNano()))
	// in hash order (random order into one bbolt node is O(n²) copying
	// until the commit splits it), dropping the mapped pages the lookups
	// read as they go (see mappedPass)
	hs := sortedHashes(batch)
	var fresh []index.Hash
	pass := mappedPass{tx: tx}
	for _, h := range hs {
		pass.touched()
		if refs.Get(h[:]) != nil {
			continue
		}
		if !batch[h].stored {
			fresh = append(fresh, h)
		} else if err := unref.Put(h[:], now); err != nil {
			return err
		}
	}
	if err := putFresh(tx, now, fresh); err != nil {
		return err
	}
	// a touched blob is stored and unreferenced: listed in unref or in a
	// row of fresh, whose time the new one in unref overrides
	for _, h := range sortedHashes(touched) {
		if refs.Get(h[:]) == nil {
			if err := unref.Put(h[:], now); err != nil {
				return err
			}
		}
	}
	return nil
}

// exists reports whether blob h is in the store, durable or pending.
func (s *Store) exists(h index.Hash) bool {
	s.pendMu.Lock()
	_, ok := s.pending[h]
	s.pendMu.Unlock()
	if ok {
		return true
	}
	found := false
	_ = s.db.View(func(tx *bolt.Tx) error {
		found = hasSmall(tx, h)
		return nil
	})
	s.lookedUp()
	return found || fileExists(s.BlobPath(h))
}

// hasTx reports whether blob h will be durable when tx commits: in the
// database, a file in place, or in the batch this transaction flushes.
func (s *Store) hasTx(tx *bolt.Tx, h index.Hash) bool {
	if _, ok := s.flushing[h]; ok {
		return true
	}
	return hasSmall(tx, h) || fileExists(s.BlobPath(h))
}

// Has reports whether blob h is in the store (pending blobs included). It
// does not read the blob; use Verify for that.
func (s *Store) Has(h index.Hash) bool {
	if s.usable() != nil {
		return false
	}
	return s.exists(h)
}

// Missing returns the hashes of hs that are not in the store (each once),
// in one pass over the database.
func (s *Store) Missing(hs []index.Hash) []index.Hash {
	var out []index.Hash
	if s.usable() != nil {
		return hs
	}
	seen := make(map[index.Hash]struct{}, len(hs))
	s.pendMu.Lock()
	var check []index.Hash
	for _, h := range hs {
		if _, dup := seen[h]; dup {
			continue
		}
		seen[h] = struct{}{}
		if _, ok := s.pending[h]; !ok {
			check = append(check, h)
		}
	}
	s.pendMu.Unlock()
	// in hash order: the lookups then walk the packed bucket's pages in
	// order instead of faulting in a random one for each blob
	slices.SortFunc(check, compareHashes)
	files := s.newBlobFiles(check)
	_ = s.db.View(func(tx *bolt.Tx) error {
		pass := mappedPass{tx: tx}
		small := newSmallLookup(tx)
		for _, h := range check {
			pass.touched()
			if !small.has(h) && !files.exists(h) {
				out = append(out, h)
			}
		}
		return nil
	})
	return out
}

// blobSrc is where a blob was found: a small blob's bytes (pending, in a
// pack at loc, or in bucket blobs), or an open file.
type blobSrc struct {
	data   []byte
	f      *os.File
	loc    packLoc
	packed bool // data came from loc
}

// blobSource finds blob h: its bytes when small (pending, in a pack, or in
// the database from before packs), else an open file (pending in tmp/ or
// under blobs/).
func (s *Store) blobSource(h index.Hash) (blobSrc, error) {
	s.pendMu.Lock()
	p, ok := s.pending[h]
	if ok && p.data != nil {
		s.pendMu.Unlock()
		return blobSrc{data: p.data}, nil
	}
	if ok && p.tmp != "" {
		f, err := os.Open(p.tmp)
		s.pendMu.Unlock()
		if err == nil {
			return blobSrc{f: f}, nil
		}
	} else {
		s.pendMu.Unlock()
	}
	var src blobSrc
	s.packMu.RLock()
	err := s.db.View(func(tx *bolt.Tx) error {
		l, ok, err := getLoc(tx, h)
		if err != nil || ok {
			src.loc, src.packed = l, ok
			return err
		}
		if v := tx.Bucket(bktBlobs).Get(h[:]); v != nil {
			src.data = bytes.Clone(v)
		}
		return nil
	})
	if err == nil && src.packed {
		src.data, err = s.readPack(h, src.loc)
	}
	s.packMu.RUnlock()
	s.lookedUp()
	if err != nil {
		if errors.Is(err, ErrCorrupt) && src.packed {
			s.quarantine(h, src, err)
		}
		return blobSrc{}, fmt.Errorf("store: blob %s: %w", h, err)
	}
	if src.data != nil {
		return src, nil
	}
	f, err := os.Open(s.BlobPath(h))
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return blobSrc{}, fmt.Errorf("store: blob %s: %w", h, ErrNotFound)
		}
		return blobSrc{}, fmt.Errorf("store: blob %s: %w", h, err)
	}
	return blobSrc{f: f}, nil
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
	bs, err := s.blobSource(h)
	if err != nil {
		return nil, err
	}
	f := bs.f
	var src *errReader
	if f != nil {
		src = &errReader{r: fileReader(f)}
	} else {
		src = &errReader{r: bytes.NewReader(bs.data)}
	}
	dec, err := s.getDecoder(src)
	if err != nil {
		if f != nil {
			_ = f.Close()
		}
		return nil, fmt.Errorf("store: blob %s: zstd decoder: %w", h, err)
	}
	return &blobReader{s: s, ctx: ctx, h: h, bs: bs, src: src, dec: dec, hasher: s.getHasher()}, nil
}

type blobReader struct {
	s      *Store
	ctx    context.Context
	h      index.Hash
	bs     blobSrc // the blob's file, or a small blob's frame
	src    *errReader
	dec    *zstd.Decoder
	hasher *index.Hasher
	n      int64
	err    error // sticky
}

func (b *blobReader) where() string {
	switch {
	case b.bs.f != nil:
		return b.bs.f.Name()
	case b.bs.packed:
		return fmt.Sprintf("pack %d at %d", b.bs.loc.pack, b.bs.loc.off)
	}
	return dbName
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
			b.err = fmt.Errorf("%w: blob %s (%s): content hashes to %s", ErrCorrupt, b.h, b.where(), got)
			b.s.quarantine(b.h, b.bs, b.err)
		} else {
			b.err = io.EOF
		}
	case b.src.err != nil:
		b.err = fmt.Errorf("store: blob %s: read: %w", b.h, b.src.err)
	default:
		b.err = fmt.Errorf("%w: blob %s (%s): bad zstd frame after %d bytes: %v", ErrCorrupt, b.h, b.where(), b.n, err)
		b.s.quarantine(b.h, b.bs, b.err)
	}
	return n, b.err
}

func (b *blobReader) Close() error {
	if b.dec == nil {
		return nil
	}
	b.s.putDecoder(b.dec)
	b.s.putHasher(b.hasher)
	b.dec, b.hasher = nil, nil
	if b.bs.f != nil {
		return b.bs.f.Close()
	}
	return nil
}

// quarantine moves a blob found corrupt to corrupt/<hash>-<unixnano>, so a
// later Put or PutCompressed can store a good copy. Only in a writable
// store, and only when the blob is still the one read (the file at the
// blob's path, the same location in a pack, or the same bytes in the
// database).
func (s *Store) quarantine(h index.Hash, src blobSrc, why error) {
	f, data := src.f, src.data
	s.log.Error("corrupt blob", "blob", h.String(), "err", why)
	if s.readOnly || s.closed.Load() {
		return
	}
	if err := mkdirAllSync(s.corruptDir()); err != nil {
		s.log.Error("quarantine corrupt blob", "blob", h.String(), "err", err)
		return
	}
	dst := filepath.Join(s.corruptDir(), fmt.Sprintf("%s-%d", h, time.Now().UnixNano()))
	if f == nil {
		s.pendMu.Lock()
		if p, ok := s.pending[h]; ok && bytes.Equal(p.data, data) {
			delete(s.pending, h)
			s.pendBytes -= p.size
		}
		s.pendMu.Unlock()
		if err := writeFileSync(dst, data, s.tmpDir(), false); err != nil {
			s.log.Error("quarantine corrupt blob", "blob", h.String(), "err", err)
		}
		err := s.update(func(tx *bolt.Tx) error {
			if src.packed {
				l, ok, err := getLoc(tx, h)
				if err == nil && !(ok && l == src.loc) {
					return nil
				}
				// a damaged location is dropped as well
				if err := openLocations(tx).del(h); err != nil {
					return err
				}
				return addDead(tx, src.loc)
			}
			b := tx.Bucket(bktBlobs)
			if bytes.Equal(b.Get(h[:]), data) {
				return b.Delete(h[:])
			}
			return nil
		})
		if err != nil {
			s.log.Error("quarantine corrupt blob", "blob", h.String(), "err", err)
			return
		}
		s.log.Warn("corrupt blob moved aside; it must be fetched again", "blob", h.String(), "to", dst)
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
	if err := os.Rename(path, dst); err != nil {
		s.log.Error("quarantine corrupt blob", "blob", h.String(), "err", err)
		return
	}
	_ = syncDir(filepath.Dir(path))
	s.log.Warn("corrupt blob moved aside; it must be fetched again", "blob", h.String(), "to", dst)
}

// OpenCompressed returns the stored zstd stream of blob h as it is
// stored, and its length, for sending to a peer; the receiver verifies it
// with PutCompressed. A missing blob gives an error wrapping ErrNotFound.
func (s *Store) OpenCompressed(h index.Hash) (io.ReadCloser, int64, error) {
	if err := s.usable(); err != nil {
		return nil, 0, err
	}
	bs, err := s.blobSource(h)
	if err != nil {
		return nil, 0, err
	}
	f := bs.f
	if f == nil {
		return io.NopCloser(bytes.NewReader(bs.data)), int64(len(bs.data)), nil
	}
	st, err := f.Stat()
	if err != nil {
		_ = f.Close()
		return nil, 0, fmt.Errorf("store: blob %s: %w", h, err)
	}
	if st.Size() >= directio.MinSize {
		return directio.NewReader(f, st.Size()), st.Size(), nil
	}
	return f, st.Size(), nil
}

// fileReader reads a blob file: a large one around the page cache (it was
// written so; see spillWriter), a smaller one through a buffer of its
// size.
func fileReader(f *os.File) io.Reader {
	st, err := f.Stat()
	if err == nil && st.Size() >= directio.MinSize {
		return directio.NewReader(f, st.Size())
	}
	bufSize := 64 << 10
	if err == nil && st.Size() < int64(bufSize) {
		bufSize = max(int(st.Size()), 512)
	}
	return bufio.NewReaderSize(f, bufSize)
}

// CopyTo writes the verified content of blob h to w and returns its size.
// On ErrCorrupt, w has received bytes that must be discarded. It copies
// through a buffer of the store's pool, never w's ReadFrom: *os.File's
// falls back to a new 32 KiB buffer for each call, which for the small
// files of a large apply from the store (a rollback, a restore) was most
// of what it allocated.
func (s *Store) CopyTo(ctx context.Context, h index.Hash, w io.Writer) (int64, error) {
	rc, err := s.Open(ctx, h)
	if err != nil {
		return 0, err
	}
	defer rc.Close()
	buf := s.getCopyBuf()
	defer s.putCopyBuf(buf)
	n, err := io.CopyBuffer(struct{ io.Writer }{w}, rc, buf[:])
	if err != nil {
		if errors.Is(err, ErrCorrupt) || errors.Is(err, ErrNotFound) {
			return n, err
		}
		return n, fmt.Errorf("store: copy blob %s: %w", h, err)
	}
	return n, nil
}

// Verify reads blob h completely and checks its hash; a damaged blob gives
// an error wrapping ErrCorrupt (and, in a writable store, is moved aside).
func (s *Store) Verify(ctx context.Context, h index.Hash) error {
	_, err := s.CopyTo(ctx, h, io.Discard)
	return err
}
