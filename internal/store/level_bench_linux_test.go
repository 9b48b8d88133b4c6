package store

import (
	"bytes"
	"runtime"
	"syscall"
	"testing"

	"github.com/klauspost/compress/zstd"
)

// BenchmarkCompressConfigs compresses configuration files one at a time
// as PutReader does (a pooled encoder, Reset, Write, Close) at both
// levels and reports the CPU time of the thread per file (cpu-ns/file,
// which load on the machine moves far less than ns/op) and the stored
// size as a fraction of the content (ratio). PBXSYNC_BENCH_CONFIGS names
// a directory of real files to use instead of generated ones.
func BenchmarkCompressConfigs(b *testing.B) {
	files := configFiles(b, 400)
	var content int
	for _, f := range files {
		content += len(f)
	}
	for _, lv := range []zstd.EncoderLevel{zstd.SpeedFastest, zstd.SpeedDefault} {
		b.Run(lv.String(), func(b *testing.B) {
			enc, err := zstd.NewWriter(nil, zstd.WithEncoderLevel(lv), zstd.WithEncoderConcurrency(1),
				zstd.WithEncoderCRC(true), zstd.WithZeroFrames(true), zstd.WithWindowSize(encoderWindow))
			if err != nil {
				b.Fatal(err)
			}
			var out bytes.Buffer
			compress := func(f []byte) int {
				out.Reset()
				enc.Reset(&out)
				if _, err := enc.Write(f); err != nil {
					b.Fatal(err)
				}
				if err := enc.Close(); err != nil {
					b.Fatal(err)
				}
				return out.Len()
			}
			stored := 0
			for _, f := range files {
				stored += compress(f)
			}
			runtime.LockOSThread()
			defer runtime.UnlockOSThread()
			before := threadCPU(b)
			i := 0
			for b.Loop() {
				compress(files[i%len(files)])
				i++
			}
			b.ReportMetric(float64(threadCPU(b)-before)/float64(i), "cpu-ns/file")
			b.ReportMetric(float64(stored)/float64(content), "ratio")
		})
	}
}

// threadCPU returns the CPU time of the calling thread in nanoseconds.
func threadCPU(b *testing.B) int64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_THREAD, &ru); err != nil {
		b.Fatal(err)
	}
	return ru.Utime.Nano() + ru.Stime.Nano()
}
