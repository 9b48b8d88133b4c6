package delta

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"

	"pbxsync/internal/index"
)

// File is content the caller holds: random access, its length and, when
// known, its BLAKE3-256 hash (as in index.Item.Hash). An *os.File with its
// size is the usual one; see OpenFile and BytesFile.
//
// A zero Hash means unknown: encoders then compute it while reading, which
// costs a BLAKE3 pass. A non-zero Hash is trusted: encoders write it into
// the header without hashing again (a file changed meanwhile is refused by
// Patch), and Patch compares it with the header's base hash.
type File struct {
	R    io.ReaderAt
	Size int64
	Hash index.Hash
}

// BytesFile returns a File over b with an unknown hash.
func BytesFile(b []byte) File { return File{R: bytes.NewReader(b), Size: int64(len(b))} }

// OpenFile returns a File over f, sized by f.Stat, with an unknown hash.
func OpenFile(f *os.File) (File, error) {
	st, err := f.Stat()
	if err != nil {
		return File{}, fmt.Errorf("delta: stat %s: %w", f.Name(), err)
	}
	return File{R: f, Size: st.Size()}, nil
}

// ctxReader returns ctx.Err() once ctx is done; the checks cost one atomic
// load per Read, and callers read in large chunks.
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

// hashingReader counts what passes through it and hashes it, unless h is
// nil.
type hashingReader struct {
	r io.Reader
	h *index.Hasher
	n int64
}

func newHashingReader(r io.Reader) *hashingReader {
	return &hashingReader{r: r, h: index.NewHasher()}
}

func (h *hashingReader) Read(p []byte) (int, error) {
	n, err := h.r.Read(p)
	if h.h != nil {
		h.h.Write(p[:n])
	}
	h.n += int64(n)
	return n, err
}

// sequential returns a reader over all of f that honours ctx.
func (f File) sequential(ctx context.Context) io.Reader {
	return ctxReader{ctx: ctx, r: io.NewSectionReader(f.R, 0, f.Size)}
}

// readAll reads all of f into memory (callers bound f.Size first).
func (f File) readAll(ctx context.Context) ([]byte, error) {
	b := make([]byte, f.Size)
	if _, err := io.ReadFull(f.sequential(ctx), b); err != nil {
		return nil, err
	}
	return b, nil
}
