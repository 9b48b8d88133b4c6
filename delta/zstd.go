package delta

import (
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
