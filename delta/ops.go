package delta

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// The op stream of KindBlocks and KindBlocksZstd payloads is a sequence of
//
//	0x01 COPY    svarint(offset − end of previous copy) uvarint(length)
//	0x02 LITERAL uvarint(length) length×byte
//	0x00 END
//
// Copy offsets are relative to where the previous copy ended (0 at the
// start), so a run of in-order copies costs two or three bytes an op.
// Lengths are never 0.
const (
	opEnd     = 0x00
	opCopy    = 0x01
	opLiteral = 0x02
)

// opWriter encodes ops, merging adjacent copies.
type opWriter struct {
	w                io.Writer
	pendOff, pendLen int64
	prevEnd          int64
	scratch          [1 + 2*maxVarint]byte

	copied, literal int64 // result bytes described by copies and literals
	ops             int64
}

func (o *opWriter) copyOp(off, n int64) error {
	if o.pendLen > 0 && o.pendOff+o.pendLen == off {
		o.pendLen += n
		return nil
	}
	if err := o.flushCopy(); err != nil {
		return err
	}
	o.pendOff, o.pendLen = off, n
	return nil
}

func (o *opWriter) flushCopy() error {
	if o.pendLen == 0 {
		return nil
	}
	b := append(o.scratch[:0], opCopy)
	b = binary.AppendVarint(b, o.pendOff-o.prevEnd)
	b = binary.AppendUvarint(b, uint64(o.pendLen))
	o.prevEnd = o.pendOff + o.pendLen
	o.copied += o.pendLen
	o.ops++
	o.pendLen = 0
	_, err := o.w.Write(b)
	return err
}

func (o *opWriter) literalOp(p []byte) error {
	if len(p) == 0 {
		return nil
	}
	if err := o.flushCopy(); err != nil {
		return err
	}
	b := append(o.scratch[:0], opLiteral)
	b = binary.AppendUvarint(b, uint64(len(p)))
	if _, err := o.w.Write(b); err != nil {
		return err
	}
	o.literal += int64(len(p))
	o.ops++
	_, err := o.w.Write(p)
	return err
}

func (o *opWriter) finish() error {
	if err := o.flushCopy(); err != nil {
		return err
	}
	_, err := o.w.Write([]byte{opEnd})
	return err
}

// baseReadError marks a failure to read the base during a patch: an I/O
// problem on the receiver, not a property of the delta.
type baseReadError struct{ err error }

func (e *baseReadError) Error() string { return "delta: reading base: " + e.err.Error() }
func (e *baseReadError) Unwrap() error { return e.err }

// applyOps decodes an op stream from r and writes the result to out,
// copying from base. Every offset and length is checked against the base
// size and the room left in the result before it is used.
func applyOps(ctx context.Context, r *bufio.Reader, base File, out *resultWriter, buf []byte) error {
	var prevEnd int64
	for nops := 0; ; nops++ {
		if nops%1024 == 0 {
			if err := ctx.Err(); err != nil {
				return err
			}
		}
		tag, err := r.ReadByte()
		if err != nil {
			return opReadErr(err, "op tag")
		}
		switch tag {
		case opEnd:
			return nil
		case opCopy:
			d, err := binary.ReadVarint(r)
			if err != nil {
				return opReadErr(err, "copy offset")
			}
			n, err := binary.ReadUvarint(r)
			if err != nil {
				return opReadErr(err, "copy length")
			}
			// prevEnd ∈ [0, base.Size]; keep the sum from overflowing.
			if d < -prevEnd || d > base.Size-prevEnd {
				return corruptf("copy from offset %d+%d outside base of %d bytes", prevEnd, d, base.Size)
			}
			off := prevEnd + d
			if n == 0 || n > uint64(base.Size-off) {
				return corruptf("copy of %d bytes at offset %d beyond base of %d bytes", n, off, base.Size)
			}
			if n > uint64(out.room()) {
				return corruptf("copy of %d bytes overruns the result (%d bytes left)", n, out.room())
			}
			if err := copyBase(ctx, out, base, off, int64(n), buf); err != nil {
				return err
			}
			prevEnd = off + int64(n)
		case opLiteral:
			n, err := binary.ReadUvarint(r)
			if err != nil {
				return opReadErr(err, "literal length")
			}
			if n == 0 || n > uint64(out.room()) {
				return corruptf("literal of %d bytes (%d bytes of result left)", n, out.room())
			}
			if m, err := io.CopyN(out, r, int64(n)); err != nil {
				if out.err != nil {
					return out.err
				}
				return opReadErr(err, fmt.Sprintf("literal (%d of %d bytes)", m, n))
			}
		default:
			return corruptf("unknown op %#02x", tag)
		}
	}
}

func copyBase(ctx context.Context, out *resultWriter, base File, off, n int64, buf []byte) error {
	for n > 0 {
		if err := ctx.Err(); err != nil {
			return err
		}
		k := int(min(n, int64(len(buf))))
		m, err := base.R.ReadAt(buf[:k], off)
		if m < k {
			if err == nil || errors.Is(err, io.EOF) {
				err = io.ErrUnexpectedEOF
			}
			return &baseReadError{fmt.Errorf("%d bytes at offset %d: %w", k, off, err)}
		}
		if _, err := out.Write(buf[:k]); err != nil {
			return err
		}
		off += int64(k)
		n -= int64(k)
	}
	return nil
}

func opReadErr(err error, what string) error {
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return corruptf("op stream truncated in %s", what)
	}
	if errors.Is(err, ErrCorrupt) {
		return err
	}
	// binary.ReadUvarint's overflow error, or an error of the payload
	// reader, which Patch reports as such.
	return fmt.Errorf("%w: op stream: %s: %w", ErrCorrupt, what, err)
}
