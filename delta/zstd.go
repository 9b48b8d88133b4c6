package delta

import (
	"fmt"
	"io"

	"github.com/klauspost/compress/zstd"
)

// Stream compression (KindZstd and the op stream of KindBlocksZstd).
const (
	// streamWindow is the encoder's window for streams: large enough for
	// the matches that matter in config files, small enough that encoder
	// and decoder stay at a few MiB each.
	streamWindow = 4 << 20
	// maxStreamWindow is the largest window the decoder accepts in a
	// stream payload.
	maxStreamWindow = 8 << 20
	// streamLevel: SpeedBetterCompression was smaller than SpeedDefault by
	// 10–30 % on Asterisk configs at similar speed; SpeedBestCompression was
	// 3–5× slower and not smaller on literals.
	streamLevel = zstd.SpeedBetterCompression
)

// windowFor returns the smallest power-of-two window ≥ n, within
// [zstd.MinWindowSize, limit].
func windowFor(n int64, limit int) int {
	w := zstd.MinWindowSize
	for int64(w) < n && w < limit {
		w <<= 1
	}
	return w
}

// newStreamEncoder returns a single-goroutine zstd encoder for about size
// bytes of input, writing to w.
func newStreamEncoder(w io.Writer, size int64) (*zstd.Encoder, error) {
	return zstd.NewWriter(w,
		zstd.WithEncoderLevel(streamLevel),
		zstd.WithEncoderConcurrency(1),
		zstd.WithEncoderCRC(false), // the result hash covers it
		zstd.WithWindowSize(windowFor(size, streamWindow)),
		zstd.WithLowerEncoderMem(true),
	)
}

// newStreamDecoder returns a single-goroutine zstd decoder over r that
// refuses windows above maxStreamWindow.
func newStreamDecoder(r io.Reader) (*zstd.Decoder, error) {
	return zstd.NewReader(r,
		zstd.WithDecoderConcurrency(1),
		zstd.WithDecoderLowmem(true),
		zstd.WithDecoderMaxWindow(maxStreamWindow),
		zstd.WithDecoderMaxMemory(maxStreamWindow),
	)
}

// lazyZstdMax is the largest op stream lazyZstd compresses in one piece.
const lazyZstdMax = 64 << 10

// lazyZstd compresses an op stream for KindBlocksZstd. A small one (a
// small edit's few ops) is kept in memory and compressed at Close by an
// encoder of a level whose tables are small: the stream encoder's tables
// alone take megabytes to allocate and clear, more than the whole block
// match of a small edit costs. A stream that outgrows lazyZstdMax goes
// through newStreamEncoder as it comes.
type lazyZstd struct {
	out  io.Writer
	size int64 // of the target, for the stream encoder's window
	buf  []byte
	enc  *zstd.Encoder
}

func (l *lazyZstd) Write(p []byte) (int, error) {
	if l.enc == nil {
		if len(l.buf)+len(p) <= lazyZstdMax {
			l.buf = append(l.buf, p...)
			return len(p), nil
		}
		enc, err := newStreamEncoder(l.out, l.size)
		if err != nil {
			return 0, fmt.Errorf("zstd encoder: %w", err)
		}
		l.enc = enc
		if _, err := enc.Write(l.buf); err != nil {
			return 0, err
		}
		l.buf = nil
	}
	return l.enc.Write(p)
}

// Close ends the zstd stream and writes what is left of it to out.
func (l *lazyZstd) Close() error {
	if l.enc != nil {
		return l.enc.Close()
	}
	enc, err := zstd.NewWriter(nil,
		zstd.WithEncoderLevel(zstd.SpeedDefault),
		zstd.WithEncoderConcurrency(1),
		zstd.WithEncoderCRC(false),
		zstd.WithWindowSize(windowFor(int64(len(l.buf)), streamWindow)),
		zstd.WithLowerEncoderMem(true),
	)
	if err != nil {
		return fmt.Errorf("zstd encoder: %w", err)
	}
	defer enc.Close()
	_, err = l.out.Write(enc.EncodeAll(l.buf, nil))
	return err
}
