package store

import (
	"encoding/binary"
	"fmt"
	"io"
	"sync"

	"github.com/klauspost/compress/zstd"
)

// Incompressible content (audio, already compressed files) is stored as a
// zstd frame of raw blocks: every blob is still one zstd stream that every
// Store and every peer decodes as before (the wire and the on-disk format
// do not change), but no CPU is spent trying to compress it, and decoding
// it is a copy.
//
// Whether content compresses is judged on its first sampleSize bytes,
// compressed at the store's level: content that saves less than 1/8 of
// them is stored raw. Content no larger than the sample is always
// compressed (it is small: configuration files). Measured on the issue-13
// mixed tree (16-bit PCM speech): the first 128 KiB of every audio file do
// not compress at all (ratio 1.000), the whole file compresses to 0.87 at
// SpeedDefault but costs 0.55–0.75 s of CPU per 32 MB (a dialplan of 23 MB
// takes 45 ms); the 13 % are not worth compressing on one side and
// decompressing twice on the other.
const (
	sampleSize = 128 << 10
	// rawBlock is the size of a raw block, zstd's largest block.
	rawBlock = 128 << 10
)

// sampler judges samples with one encoder of its own, shared by the puts
// that need it (only content larger than the sample): EncodeAll on a put's
// own encoder gave each pooled encoder a second set of tables (~1.8 MiB),
// 7 of a source's 29 MB live heap during the scan of the mixed tree.
type sampler struct {
	level zstd.EncoderLevel
	mu    sync.Mutex
	enc   *zstd.Encoder // made on first use; nil after release
	out   []byte
	// bufs holds the puts' sample buffers (*[]byte of capacity
	// sampleSize): a sample made for each put was a copy of every file a
	// source stored, 150 MB of garbage in a 100k first scan
	bufs sync.Pool
}

// sampleBuf returns an empty sample buffer; putSampleBuf takes it back.
func (m *sampler) sampleBuf() *[]byte {
	if b, ok := m.bufs.Get().(*[]byte); ok {
		return b
	}
	b := make([]byte, 0, sampleSize)
	return &b
}

func (m *sampler) putSampleBuf(b *[]byte) {
	*b = (*b)[:0]
	m.bufs.Put(b)
}

// compressesWell reports whether sample, compressed at the sampler's
// level, saves at least 1/8 of its size.
func (m *sampler) compressesWell(sample []byte) (bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.enc == nil {
		enc, err := zstd.NewWriter(nil,
			zstd.WithEncoderLevel(m.level),
			zstd.WithEncoderConcurrency(1),
			zstd.WithWindowSize(sampleSize),
		)
		if err != nil {
			return false, fmt.Errorf("zstd encoder: %w", err)
		}
		m.enc = enc
	}
	m.out = m.enc.EncodeAll(sample, m.out[:0])
	return len(m.out) <= len(sample)-len(sample)/8, nil
}

// release closes the encoder (the next sample makes a new one).
func (m *sampler) release() {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.enc != nil {
		_ = m.enc.Close()
		m.enc, m.out = nil, nil
	}
}

// rawFrameWriter writes what it is given as one zstd frame of raw blocks
// (RFC 8878: no content size, no checksum — the store hashes the content
// itself — and a 128 KiB window, the size of a block).
type rawFrameWriter struct {
	w       io.Writer
	buf     []byte // the block being filled; written once more content follows it
	started bool
	err     error
}

func newRawFrameWriter(w io.Writer) *rawFrameWriter {
	return &rawFrameWriter{w: w, buf: make([]byte, 0, rawBlock)}
}

// rawFrameHeader: the magic number, a frame header descriptor with no
// flags set, and a window descriptor of 2^17 bytes (exponent 7).
var rawFrameHeader = []byte{0x28, 0xB5, 0x2F, 0xFD, 0x00, 7 << 3}

func (r *rawFrameWriter) Write(p []byte) (int, error) {
	if r.err != nil {
		return 0, r.err
	}
	n := len(p)
	for len(p) > 0 {
		if len(r.buf) == rawBlock {
			// more content follows: the full block is not the last
			if r.err = r.block(false); r.err != nil {
				return 0, r.err
			}
		}
		k := copy(r.buf[len(r.buf):rawBlock], p)
		r.buf = r.buf[:len(r.buf)+k]
		p = p[k:]
	}
	return n, nil
}

// block writes the buffered block (with the frame header first).
func (r *rawFrameWriter) block(last bool) error {
	if !r.started {
		if _, err := r.w.Write(rawFrameHeader); err != nil {
			return err
		}
		r.started = true
	}
	// Block_Header: Last_Block (bit 0), Block_Type 0 = Raw (bits 1–2),
	// Block_Size (bits 3–23), little-endian
	v := uint32(len(r.buf)) << 3
	if last {
		v |= 1
	}
	var hdr [4]byte
	binary.LittleEndian.PutUint32(hdr[:], v)
	if _, err := r.w.Write(hdr[:3]); err != nil {
		return err
	}
	if _, err := r.w.Write(r.buf); err != nil {
		return err
	}
	r.buf = r.buf[:0]
	return nil
}

// Close writes the last block and ends the frame.
func (r *rawFrameWriter) Close() error {
	if r.err != nil {
		return r.err
	}
	r.err = r.block(true)
	return r.err
}

// adaptiveWriter compresses what it is given into out with enc, unless
// its first sampleSize bytes show that it does not compress (see
// sampler.compressesWell): then it writes one raw frame instead.
type adaptiveWriter struct {
	enc    *zstd.Encoder // writing into out; its Close ends a compressed blob
	judge  *sampler
	out    io.Writer
	sample []byte         // the first sampleSize bytes, until decided
	buf    *[]byte        // the sampler's buffer sample is in
	w      io.WriteCloser // enc or a rawFrameWriter, once decided
	raw    bool
}

func newAdaptiveWriter(enc *zstd.Encoder, judge *sampler, out io.Writer) *adaptiveWriter {
	return &adaptiveWriter{enc: enc, judge: judge, out: out}
}

func (a *adaptiveWriter) Write(p []byte) (int, error) {
	if a.w != nil {
		return a.w.Write(p)
	}
	n := len(p)
	if a.buf == nil {
		a.buf = a.judge.sampleBuf()
		a.sample = (*a.buf)[:0]
	}
	k := min(len(p), sampleSize-len(a.sample))
	a.sample = append(a.sample, p[:k]...)
	p = p[k:]
	if len(p) == 0 {
		return n, nil // content of at most sampleSize bytes is compressed (see Close)
	}
	if err := a.decide(true); err != nil {
		return 0, err
	}
	if _, err := a.w.Write(p); err != nil {
		return 0, err
	}
	return n, nil
}

// decide picks the encoding (from the sample when large) and writes the
// sample.
func (a *adaptiveWriter) decide(large bool) error {
	a.w = a.enc
	if large {
		well, err := a.judge.compressesWell(a.sample)
		if err != nil {
			return err
		}
		if !well {
			a.w, a.raw = newRawFrameWriter(a.out), true
		}
	}
	_, err := a.w.Write(a.sample) // a Write does not keep what it is given
	if a.buf != nil {
		a.judge.putSampleBuf(a.buf)
	}
	a.sample, a.buf = nil, nil
	return err
}

// copyRawFrame copies the content of a raw frame from in to out, its
// header (rawFrameHeader) already read, through buf: one copy where a
// decoder made three. Only raw blocks are taken (rawFrameWriter writes
// nothing else, and no other encoder of the store's writes this header);
// any other block, a block larger than the window or a frame cut short is
// corrupt.
func copyRawFrame(out io.Writer, in io.Reader, buf []byte) (int64, error) {
	var n int64
	for {
		var hdr [4]byte
		if _, err := io.ReadFull(in, hdr[:3]); err != nil {
			return n, fmt.Errorf("%w: raw frame: block header after %d bytes: %v", ErrCorrupt, n, err)
		}
		v := binary.LittleEndian.Uint32(hdr[:])
		last, kind, size := v&1 == 1, (v>>1)&3, int64(v>>3)
		if kind != 0 || size > rawBlock {
			return n, fmt.Errorf("%w: raw frame: block of type %d and %d bytes after %d bytes", ErrCorrupt, kind, size, n)
		}
		k, err := io.CopyBuffer(out, io.LimitReader(in, size), buf)
		n += k
		if err != nil {
			return n, err
		}
		if k < size {
			return n, fmt.Errorf("%w: raw frame: block cut short after %d bytes", ErrCorrupt, n)
		}
		if last {
			return n, nil
		}
	}
}

// Close ends the blob: content no larger than the sample is compressed
// whatever it is.
func (a *adaptiveWriter) Close() error {
	if a.w == nil {
		if err := a.decide(false); err != nil {
			return err
		}
	}
	return a.w.Close()
}
