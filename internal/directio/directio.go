// Package directio writes and reads large files around the page cache
// (O_DIRECT on Linux), in aligned chunks of up to BufSize bytes.
//
// Why: on the machines measured (a VM, ext4 on virtio), every page the
// page cache allocates for a new file costs ~3 µs of system time, which is
// most of the CPU a large transfer spends on either side: writing 600 MiB
// into a new file took 2.0-2.6 s of system time through the page cache
// and 0.09-0.13 s with O_DIRECT in 1 MiB writes, a cold buffered read of
// it 2.0 s and an O_DIRECT read 0.06 s (dd, load 6-13; see
// docs/performance.md, eighth pass: large files). Content the store keeps
// for later (blob files) and copies staged for an apply are written once
// and read seldom, so caching them only costs.
//
// A file system that refuses O_DIRECT (some kernels' tmpfs) gets ordinary
// writes and reads; so does the last, partial block of a file. Durability
// is unchanged: O_DIRECT leaves the disk's own cache to fsync, and callers
// fsync as before.
package directio

import (
	"errors"
	"fmt"
	"io"
	"os"
	"syscall"
	"unsafe"
)

const (
	// Align is the alignment O_DIRECT needs of buffers, file offsets and
	// lengths (the page size; a multiple of every logical block size).
	Align = 4096
	// BufSize is the largest chunk a Writer or Reader moves at once (and
	// its buffer): writes of 1 MiB took 0.12 s of system time per 600 MiB,
	// of 512 KiB 0.16 s, of 128 KiB 0.53 s; a target fetching 8 large
	// files holds 16 buffers (the store's and the staging copy's).
	BufSize = 512 << 10
	// MinSize is the size from which callers should use direct I/O: below
	// it, the buffer costs more than the page cache.
	MinSize = 1 << 20
)

// alignedBuf returns a buffer of n bytes (a multiple of Align) whose
// address is a multiple of Align.
func alignedBuf(n int) []byte {
	b := make([]byte, n+Align)
	off := 0
	if r := int(uintptr(unsafe.Pointer(&b[0])) & (Align - 1)); r != 0 {
		off = Align - r
	}
	return b[off : off+n : off+n]
}

// bufSize is the buffer for a file of about size bytes (≤ 0: unknown):
// size rounded up to Align, at most BufSize.
func bufSize(size int64) int {
	if size <= 0 || size >= BufSize {
		return BufSize
	}
	return int((size + Align - 1) &^ (Align - 1))
}

// Writer writes to a file opened for writing at offset 0, with O_DIRECT in
// whole aligned chunks; Flush writes the rest without it. It is not safe
// for concurrent use.
type Writer struct {
	f      *os.File
	buf    []byte // aligned; buf[:n] is pending
	n      int
	direct bool // f has O_DIRECT set
	done   bool // Flush wrote a partial block: later writes are plain
	err    error
}

// NewWriter returns a Writer for f, which must be a regular file opened
// for writing and positioned at offset 0 (a new file). size is about how
// much will be written (≤ 0: unknown); it sizes the buffer. When f refuses
// O_DIRECT the Writer writes through the page cache.
func NewWriter(f *os.File, size int64) *Writer {
	w := &Writer{f: f, buf: alignedBuf(bufSize(size))}
	w.direct = setDirect(f, true) == nil
	return w
}

// Write buffers p, writing every full buffer.
func (w *Writer) Write(p []byte) (int, error) {
	if w.err != nil {
		return 0, w.err
	}
	written := 0
	for len(p) > 0 {
		k := copy(w.buf[w.n:], p)
		w.n += k
		p = p[k:]
		written += k
		if w.n == len(w.buf) {
			if w.err = w.writeOut(w.n); w.err != nil {
				return written - k, w.err
			}
		}
	}
	return written, nil
}

// writeOut writes buf[:n] and keeps what is left of it (nothing, unless a
// plain write fell short).
func (w *Writer) writeOut(n int) error {
	m, err := w.f.Write(w.buf[:n])
	if err != nil && w.direct && errors.Is(err, syscall.EINVAL) {
		// this file refuses direct I/O after all (the file system
		// decides per write on some kernels), or a short write left the
		// offset unaligned: write the rest plainly
		w.direct = false
		if derr := setDirect(w.f, false); derr != nil {
			return fmt.Errorf("write %s: %w (and clearing O_DIRECT: %v)", w.f.Name(), err, derr)
		}
		var k int
		k, err = w.f.Write(w.buf[m:n])
		m += k
	}
	if err != nil {
		return fmt.Errorf("write %s: %w", w.f.Name(), err)
	}
	w.n = copy(w.buf, w.buf[m:w.n])
	return nil
}

// Flush writes everything buffered. The last part, when it is not a whole
// number of aligned blocks, is written without O_DIRECT, and so is
// everything written after it: call Flush once, at the end.
func (w *Writer) Flush() error {
	if w.err != nil {
		return w.err
	}
	if whole := w.n &^ (Align - 1); w.direct && whole > 0 {
		if w.err = w.writeOut(whole); w.err != nil {
			return w.err
		}
	}
	if w.n == 0 {
		return nil
	}
	if w.direct {
		w.direct = false
		if err := setDirect(w.f, false); err != nil {
			w.err = fmt.Errorf("write %s: clear O_DIRECT: %w", w.f.Name(), err)
			return w.err
		}
	}
	w.done = true
	w.err = w.writeOut(w.n)
	return w.err
}

// Reader reads a file from offset 0 with O_DIRECT in aligned chunks. It is
// not safe for concurrent use. Close closes the file.
type Reader struct {
	f      *os.File
	buf    []byte // aligned; buf[r:w] is unread
	r, w   int
	direct bool
	err    error // sticky, io.EOF included
}

// NewReader returns a Reader of f, a regular file opened for reading and
// positioned at offset 0; size (≤ 0: unknown) sizes the buffer. When f
// refuses O_DIRECT the Reader reads through the page cache.
func NewReader(f *os.File, size int64) *Reader {
	r := &Reader{f: f, buf: alignedBuf(bufSize(size))}
	r.direct = setDirect(f, true) == nil
	return r
}

// fill reads the next chunk into the empty buffer.
func (r *Reader) fill() {
	n, err := r.f.Read(r.buf)
	if err != nil && err != io.EOF && r.direct && n == 0 && errors.Is(err, syscall.EINVAL) {
		r.direct = false
		if derr := setDirect(r.f, false); derr == nil {
			n, err = r.f.Read(r.buf)
		}
	}
	if r.direct && n > 0 && n&(Align-1) != 0 && err == nil {
		// a short read not at the end would leave the offset unaligned:
		// go on without O_DIRECT (a regular file reads short only at
		// its end, where the next read returns io.EOF either way)
		r.direct = false
		if derr := setDirect(r.f, false); derr != nil {
			err = fmt.Errorf("clear O_DIRECT: %w", derr)
		}
	}
	r.r, r.w = 0, n
	if n == 0 && err == nil {
		err = io.ErrNoProgress
	}
	if err != nil {
		if err != io.EOF {
			err = fmt.Errorf("read %s: %w", r.f.Name(), err)
		}
		r.err = err
	}
}

// Read reads up to len(p) bytes.
func (r *Reader) Read(p []byte) (int, error) {
	if r.r == r.w {
		if r.err != nil {
			return 0, r.err
		}
		r.fill()
		if r.r == r.w {
			return 0, r.err
		}
	}
	n := copy(p, r.buf[r.r:r.w])
	r.r += n
	return n, nil
}

// WriteTo writes the rest of the file to w, a chunk at a time, without
// another copy.
func (r *Reader) WriteTo(w io.Writer) (int64, error) {
	var total int64
	for {
		if r.r < r.w {
			n, err := w.Write(r.buf[r.r:r.w])
			total += int64(n)
			r.r += n
			if err != nil {
				return total, err
			}
			if r.r < r.w {
				return total, io.ErrShortWrite
			}
		}
		if r.err != nil {
			if r.err == io.EOF {
				return total, nil
			}
			return total, r.err
		}
		r.fill()
	}
}

// Close closes the file.
func (r *Reader) Close() error { return r.f.Close() }
