package delta

import (
	"bytes"
	"context"
	"fmt"
	"testing"

	"github.com/klauspost/compress/zstd"

	"pbxsync/internal/astgen"
)

// BenchmarkDeltaThreshold measures where a delta pays off against sending
// the whole content as the zstd frame the store already holds (what the
// syncer sends otherwise): a one-line edit of a generated dialplan of each
// size, encoded with Encode as the syncer calls it. It reports
//
//	delta-B   the encoded delta (header included)
//	whole-B   the zstd frame of the new version (store level SpeedDefault)
//	saved-B   whole-B − delta-B − 64 (the base hash an inline delta adds)
//
// and ns/op, the CPU the delta costs. syncer's auto threshold
// (config.DeltaMinSize) is the smallest size where saved-B is clearly
// positive; ns/op shows what that costs in latency:
//
//	go test -run '^$' -bench DeltaThreshold -benchtime 20x ./delta/
func BenchmarkDeltaThreshold(b *testing.B) {
	g := astgen.New(7)
	full := g.Dialplan(60_000) // ~12 MB
	for _, size := range []int{256, 512, 1 << 10, 2 << 10, 4 << 10, 16 << 10, 64 << 10, 256 << 10, 1 << 20, 2 << 20, 5 << 20} {
		base := cutLines(full, size)
		target := astgen.New(uint64(size)).ChangeLine(base)
		whole := zstdFrame(b, target)
		opts := &Options{TempDir: b.TempDir()}
		b.Run(fmt.Sprintf("size=%s", sizeName(size)), func(b *testing.B) {
			var n int
			for b.Loop() {
				var out bytes.Buffer
				bf := BytesFile(base)
				if _, err := Encode(context.Background(), &out, &bf, BytesFile(target), opts); err != nil {
					b.Fatal(err)
				}
				n = out.Len()
			}
			b.ReportMetric(float64(n), "delta-B")
			b.ReportMetric(float64(whole), "whole-B")
			b.ReportMetric(float64(whole-n-64), "saved-B")
		})
	}
}

// cutLines returns the first lines of text that make at most n bytes.
func cutLines(text []byte, n int) []byte {
	if len(text) <= n {
		return text
	}
	cut := bytes.LastIndexByte(text[:n], '\n')
	return text[:cut+1]
}

func zstdFrame(b *testing.B, p []byte) int {
	enc, err := zstd.NewWriter(nil, zstd.WithEncoderLevel(zstd.SpeedDefault))
	if err != nil {
		b.Fatal(err)
	}
	defer enc.Close()
	return len(enc.EncodeAll(p, nil))
}

func sizeName(n int) string {
	switch {
	case n >= 1<<20:
		return fmt.Sprintf("%dMiB", n>>20)
	case n >= 1<<10:
		return fmt.Sprintf("%dKiB", n>>10)
	}
	return fmt.Sprintf("%dB", n)
}
