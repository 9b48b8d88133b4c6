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
// A zero Hash means unknown: encoders then compute it while reading. A
// non-zero Hash is trusted by Patch for the base check, and checked by the
// encoders against what they read.
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

// hashingReader hashes and counts what passes through it.
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
	h.h.Write(p[:n])
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
