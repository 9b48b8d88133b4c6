package delta

import (
	"fmt"
	"io"
)

// trimMax bounds how far refiner extends a copy into a literal, and so the
// base bytes it reads per literal.
const trimMax = 64 << 10

// refiner sits between the block matcher and the op writer when the sender
// holds the base. Block matching finds copies only at block boundaries of
// the base, so the literal between two copies holds up to a block of bytes
// that the base has too. refiner extends the copy before a literal forward
// and the copy after it backward, byte by byte against the base, so the
// literal shrinks to the bytes that really changed: an edited line costs
// its changed characters, not a block.
type refiner struct {
	next    *opWriter
	base    File
	lit     []byte // pending literal bytes
	trimmed bool   // the pending literal's head was already trimmed
	prevEnd int64  // base offset after the last copy, -1 before the first
	buf     []byte
}

func newRefiner(next *opWriter, base File) *refiner {
	return &refiner{next: next, base: base, prevEnd: -1}
}

func (r *refiner) literalOp(p []byte) error {
	r.lit = append(r.lit, p...)
	if len(r.lit) > 2*trimMax {
		if err := r.trimHead(); err != nil {
			return err
		}
		k := len(r.lit) - trimMax
		if err := r.next.literalOp(r.lit[:k]); err != nil {
			return err
		}
		r.lit = r.lit[:copy(r.lit, r.lit[k:])]
	}
	return nil
}

// trimHead extends the previous copy over the literal's matching prefix.
func (r *refiner) trimHead() error {
	if r.trimmed || r.prevEnd < 0 || len(r.lit) == 0 {
		r.trimmed = true
		return nil
	}
	r.trimmed = true
	m := int(min(int64(len(r.lit)), trimMax, r.base.Size-r.prevEnd))
	if m <= 0 {
		return nil
	}
	b, err := r.readBase(r.prevEnd, m)
	if err != nil {
		return err
	}
	k := 0
	for k < m && b[k] == r.lit[k] {
		k++
	}
	if k == 0 {
		return nil
	}
	if err := r.next.copyOp(r.prevEnd, int64(k)); err != nil {
		return err
	}
	r.prevEnd += int64(k)
	r.lit = r.lit[:copy(r.lit, r.lit[k:])]
	return nil
}

func (r *refiner) copyOp(off, n int64) error {
	if len(r.lit) > 0 {
		if err := r.trimHead(); err != nil {
			return err
		}
		// Extend this copy backward over the literal's matching suffix.
		if m := int(min(int64(len(r.lit)), trimMax, off)); m > 0 {
			b, err := r.readBase(off-int64(m), m)
			if err != nil {
				return err
			}
			j := 0
			for j < m && b[m-1-j] == r.lit[len(r.lit)-1-j] {
				j++
			}
			r.lit = r.lit[:len(r.lit)-j]
			off -= int64(j)
			n += int64(j)
		}
		if err := r.next.literalOp(r.lit); err != nil {
			return err
		}
		r.lit = r.lit[:0]
	}
	r.trimmed = false
	r.prevEnd = off + n
	return r.next.copyOp(off, n)
}

func (r *refiner) finish() error {
	if len(r.lit) > 0 {
		if err := r.trimHead(); err != nil {
			return err
		}
		if err := r.next.literalOp(r.lit); err != nil {
			return err
		}
		r.lit = r.lit[:0]
	}
	return r.next.finish()
}

func (r *refiner) readBase(off int64, n int) ([]byte, error) {
	if len(r.buf) < n {
		r.buf = make([]byte, n) // n ≤ trimMax
	}
	b := r.buf[:n]
	if got, err := r.base.R.ReadAt(b, off); got < n {
		if err == nil || err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return nil, fmt.Errorf("reading base at %d: %w", off, err)
	}
	return b, nil
}
