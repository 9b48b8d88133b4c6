package syncer

import (
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"pbxsync/internal/astgen"
)

// BenchmarkSourceFirstGeneration measures a source's way to its first
// generation over a tree it has never seen (the first 16 s of an initial
// sync of 100,000 files, issue 13): scan, read, hash and store every file,
// record generation 1. Only the source runs (its target is never
// started). The tree is PBXSYNC_BENCH_TREE when set, else
// PBXSYNC_BENCH_FILES (20,000 by default) pjsip-like files of 1–7 KB in
// 100 directories, written once. It reports the agent's CPU seconds per
// generation (cpu-s: user + system of the whole process, so run it
// alone) besides the wall time:
//
//	PBXSYNC_BENCH_FILES=100000 go test -run '^$' -bench SourceFirstGeneration -benchtime 3x -cpuprofile /tmp/src.prof ./syncer/
func BenchmarkSourceFirstGeneration(b *testing.B) {
	tree := os.Getenv("PBXSYNC_BENCH_TREE")
	if tree == "" {
		tree = b.TempDir()
		writeConfTree(b, tree, 100, benchFiles(b, 20000))
	}
	var cpu time.Duration
	for b.Loop() {
		b.StopTimer()
		h := newHarness(b)
		h.quiet = true
		a, _ := h.pair("")
		a.Jobs[0].Path = tree
		before := cpuTime(b)
		b.StartTimer()
		a.start()
		eventually(b, 30*time.Minute, "generation 1", func() error {
			if js, ok := a.jobStatus("conf"); !ok || js.Generation == 0 {
				return fmt.Errorf("source job %+v", js)
			}
			return nil
		})
		b.StopTimer()
		cpu += cpuTime(b) - before
		a.stop()
		b.StartTimer()
	}
	b.ReportMetric(cpu.Seconds()/float64(b.N), "cpu-s/op")
}

// writeConfTree writes files pjsip-like .conf files of 1–7 KB, all
// different, into dirs directories below root.
func writeConfTree(tb testing.TB, root string, dirs, files int) {
	tb.Helper()
	g := astgen.New(1000)
	for i := range files {
		d := filepath.Join(root, fmt.Sprintf("site%03d", i%dirs))
		if i < dirs {
			if err := os.MkdirAll(d, 0o755); err != nil {
				tb.Fatal(err)
			}
		}
		if err := os.WriteFile(filepath.Join(d, fmt.Sprintf("endpoint%05d.conf", i)), g.PJSIP(1+i%4), 0o644); err != nil {
			tb.Fatal(err)
		}
	}
}

// cpuTime is the CPU time (user + system) this process used so far.
func cpuTime(tb testing.TB) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		tb.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
