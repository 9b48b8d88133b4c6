package delta

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"

	"pbxsync/internal/index"
)

// DefaultMaxSize is the default PatchOptions.MaxSize.
const DefaultMaxSize = 64 << 30

// PatchOptions bound what Patch accepts.
type PatchOptions struct {
	// MaxSize is the largest result accepted (ErrTooLarge above it); 0
	// means DefaultMaxSize.
	MaxSize int64
	// MaxDictBase is the largest base a KindDictZstd delta may make Patch
	// load into memory (ErrTooLarge above it); 0 means DefaultMaxDictBase.
	MaxDictBase int64
	// VerifyBase hashes the base before patching and refuses a base whose
	// hash differs from the one in the header (ErrBaseMismatch). It costs a
	// pass over the base; leave it off when base.Hash comes from a trusted
	// content-addressed store, which Patch compares with the header for
	// free.
	VerifyBase bool
}

// Patch reads one delta from r and writes the result to w. base is the
// content the delta was made against, or nil for kinds that need none
// (KindRaw, KindZstd). Patch reads exactly the delta's bytes from r.
//
// Before writing anything Patch checks the header (ErrCorrupt,
// ErrUnsupported), the result size against opts.MaxSize (ErrTooLarge) and
// the base against the header: its presence, its size, and its hash when
// base.Hash is set or opts.VerifyBase asks for it (ErrBaseMismatch). It
// then writes the result to w as it decodes, bounding every length and
// offset, and at the end checks the result's size and BLAKE3-256 hash
// (ErrCorrupt). w receives output before the hash is known to be right:
// write to a staging file and rename it into place only when Patch returns
// nil.
//
// Memory is bounded by a few MiB for every kind but KindDictZstd, which
// holds the base (at most opts.MaxDictBase) and a window of base + result.
//
// Patch is ReadHeader followed by Apply; call those two to choose the base
// after seeing the header.
func Patch(ctx context.Context, w io.Writer, base *File, r io.Reader, opts *PatchOptions) (Header, error) {
	h, err := ReadHeader(r)
	if err != nil {
		return h, err
	}
	return h, Apply(ctx, w, h, base, r, opts)
}

// Apply is Patch after the header: it decodes the payload that follows a
// header read with ReadHeader, with Patch's checks. A receiver uses it to
// pick the base (by h.BaseHash, from its store) or skip a result it already
// holds (by h.ResultHash) before it opens anything.
func Apply(ctx context.Context, w io.Writer, h Header, base *File, r io.Reader, opts *PatchOptions) error {
	var o PatchOptions
	if opts != nil {
		o = *opts
	}
	if o.MaxSize <= 0 {
		o.MaxSize = DefaultMaxSize
	}
	if o.MaxDictBase <= 0 {
		o.MaxDictBase = DefaultMaxDictBase
	}
	if !h.Kind.valid() || h.ResultSize < 0 || h.PayloadSize < 0 || h.PayloadSize > maxPayload(h.ResultSize) ||
		(h.Kind == KindRaw && h.PayloadSize != h.ResultSize) {
		return corruptf("inconsistent header: %s, result %d bytes, payload %d bytes", h.Kind, h.ResultSize, h.PayloadSize)
	}
	if h.ResultSize > o.MaxSize {
		return fmt.Errorf("%w: result of %d bytes, limit %d", ErrTooLarge, h.ResultSize, o.MaxSize)
	}
	if h.Kind.NeedsBase() {
		if err := checkBase(ctx, &h, base, &o); err != nil {
			return err
		}
	}
	src := &payloadReader{r: ctxReader{ctx: ctx, r: r}, left: h.PayloadSize}
	out := &resultWriter{w: w, limit: h.ResultSize, h: index.NewHasher()}
	err := decodePayload(ctx, &h, base, src, out)
	if err == nil {
		err = src.finish()
	}
	switch {
	case out.err != nil:
		return fmt.Errorf("delta: writing result: %w", out.err)
	case src.err != nil:
		return fmt.Errorf("delta: reading payload: %w", src.err)
	case ctx.Err() != nil:
		return ctx.Err()
	case err != nil:
		var be *baseReadError
		if errors.Is(err, ErrCorrupt) || errors.As(err, &be) {
			return err
		}
		return fmt.Errorf("%w: %s payload: %w", ErrCorrupt, h.Kind, err)
	}
	if out.n != h.ResultSize {
		return corruptf("result is %d bytes, the header says %d", out.n, h.ResultSize)
	}
	if got := out.h.Sum(); got != h.ResultHash {
		return corruptf("result hash %s, the header says %s (a damaged delta, or a base with the right size but other content)", got.Short(), h.ResultHash.Short())
	}
	return nil
}

func checkBase(ctx context.Context, h *Header, base *File, o *PatchOptions) error {
	if base == nil || base.R == nil {
		return fmt.Errorf("%w: %s delta needs base %s (%d bytes), none given", ErrBaseMismatch, h.Kind, h.BaseHash.Short(), h.BaseSize)
	}
	if base.Size != h.BaseSize {
		return fmt.Errorf("%w: base is %d bytes, the delta was made against %d bytes (%s)", ErrBaseMismatch, base.Size, h.BaseSize, h.BaseHash.Short())
	}
	if !base.Hash.IsZero() && base.Hash != h.BaseHash {
		return fmt.Errorf("%w: base is %s, the delta was made against %s", ErrBaseMismatch, base.Hash.Short(), h.BaseHash.Short())
	}
	if h.Kind == KindDictZstd && h.BaseSize > o.MaxDictBase {
		return fmt.Errorf("%w: dict-zstd delta over a %d-byte base, limit %d", ErrTooLarge, h.BaseSize, o.MaxDictBase)
	}
	if o.VerifyBase {
		got, n, err := index.HashReader(base.sequential(ctx))
		if err != nil {
			return &baseReadError{err}
		}
		if n != h.BaseSize || got != h.BaseHash {
			return fmt.Errorf("%w: base content hashes to %s, the delta was made against %s", ErrBaseMismatch, got.Short(), h.BaseHash.Short())
		}
	}
	return nil
}

func decodePayload(ctx context.Context, h *Header, base *File, src *payloadReader, out *resultWriter) error {
	switch h.Kind {
	case KindRaw:
		_, err := io.Copy(out, src)
		return err
	case KindZstd:
		dec, err := newStreamDecoder(src)
		if err != nil {
			return err
		}
		defer dec.Close()
		_, err = io.Copy(out, dec)
		return err
	case KindDictZstd:
		b, err := base.readAll(ctx)
		if err != nil {
			return &baseReadError{err}
		}
		return decodeDictZstd(src, b, h.ResultSize, out)
	case KindBlocks:
		br := bufio.NewReaderSize(src, int(min(64<<10, max(h.PayloadSize, 16))))
		if err := applyOps(ctx, br, *base, out, copyBuffer(base.Size)); err != nil {
			return err
		}
		if br.Buffered() > 0 {
			return corruptf("%d bytes after the end op", br.Buffered())
		}
		return nil
	case KindBlocksZstd:
		dec, err := newStreamDecoder(src)
		if err != nil {
			return err
		}
		defer dec.Close()
		br := bufio.NewReaderSize(dec, 64<<10)
		if err := applyOps(ctx, br, *base, out, copyBuffer(base.Size)); err != nil {
			return err
		}
		if n, _ := br.Read(make([]byte, 1)); n > 0 || br.Buffered() > 0 {
			return corruptf("data after the end op")
		}
		return nil
	}
	return fmt.Errorf("%w: kind %d", ErrUnsupported, h.Kind)
}

// copyBuffer returns the buffer for copies from a base of size bytes.
func copyBuffer(size int64) []byte { return make([]byte, min(256<<10, max(size, 512))) }

// payloadReader yields exactly the payload's bytes and tells a payload cut
// short (corrupt) from a failing reader (reported as such).
type payloadReader struct {
	r    io.Reader
	left int64
	err  error // from r, other than EOF
}

func (p *payloadReader) Read(b []byte) (int, error) {
	if p.left <= 0 {
		return 0, io.EOF
	}
	if int64(len(b)) > p.left {
		b = b[:p.left]
	}
	n, err := p.r.Read(b)
	p.left -= int64(n)
	if err != nil && !errors.Is(err, io.EOF) {
		p.err = err
	}
	if errors.Is(err, io.EOF) && p.left > 0 {
		err = io.ErrUnexpectedEOF
	}
	return n, err
}

// finish checks that the decoder used the whole payload. It does not
// drain what is left: a forged payload size must not make Patch read on.
func (p *payloadReader) finish() error {
	if p.left == 0 {
		return nil
	}
	var b [1]byte
	n, _ := p.Read(b[:])
	if p.err != nil {
		return nil // reported by the caller
	}
	if n > 0 {
		return corruptf("payload has bytes left over after decoding")
	}
	return corruptf("payload truncated: %d bytes missing", p.left)
}

// resultWriter hashes and counts the result, refuses to go past its
// declared size, and keeps the error of the caller's writer apart.
type resultWriter struct {
	w     io.Writer
	limit int64
	n     int64
	h     *index.Hasher
	err   error
}

func (o *resultWriter) room() int64 { return o.limit - o.n }

func (o *resultWriter) Write(p []byte) (int, error) {
	if int64(len(p)) > o.room() {
		return 0, corruptf("result longer than the %d bytes the header says", o.limit)
	}
	n, err := o.w.Write(p)
	o.h.Write(p[:n])
	o.n += int64(n)
	if err == nil && n < len(p) {
		err = io.ErrShortWrite
	}
	if err != nil {
		o.err = err
		return n, err
	}
	return n, nil
}
