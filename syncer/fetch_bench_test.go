package syncer

import (
	"fmt"
	"os"
	"regexp"
	"runtime/pprof"
	"strconv"
	"testing"
	"time"

	"pbxsync/internal/astgen"
)

// BenchmarkFetch measures a target's fetch of a source's first generation,
// two in-process agents on 127.0.0.1: the source records its tree first,
// then the target starts and is timed until it applied it. It reports the
// fetch phase (the target's "phase done … phase=fetching"), the whole
// take, and the process's CPU time from the target's start (both agents:
// the target's work and the source's serving), per MB of content.
//
//   - small: PBXSYNC_BENCH_FILES (10,000 by default) .conf files of 1-7 KB
//     in 100 directories, like benchscale's 100k job;
//   - large: 6 × 24 MiB audio and 2 × 16 MiB text (dialplans),
//     like benchscale's mixed tree.
//
// PBXSYNC_BENCH_CPUPROFILE=FILE writes a CPU profile from the target's
// start to its apply:
//
//	PBXSYNC_BENCH_CPUPROFILE=/tmp/fetch.prof go test -run '^$' -bench 'Fetch/small' -benchtime 1x ./syncer/
func BenchmarkFetch(b *testing.B) {
	b.Run("small", func(b *testing.B) {
		files := benchFiles(b, 10000)
		benchFetch(b, func(a *tnode) int64 {
			g := astgen.New(1000)
			var total int64
			for i := range files {
				body := g.PJSIP(1 + i%4)
				a.write(fmt.Sprintf("site%03d/endpoint%05d.conf", i%100, i), string(body), 0o644)
				total += int64(len(body))
			}
			return total
		})
	})
	b.Run("large", func(b *testing.B) {
		benchFetch(b, func(a *tnode) int64 {
			g := astgen.New(5000)
			var total int64
			for i := range 6 {
				a.replace(fmt.Sprintf("sounds/custom/prompt%02d.wav", i), g.WAV(24<<20), 0o644)
				total += 24 << 20
			}
			for i := range 2 {
				body := g.Dialplan(16 << 20 / 200)
				a.replace(fmt.Sprintf("dialplan/extensions%d.conf", i), body, 0o644)
				total += int64(len(body))
			}
			return total
		})
	})
}

var fetchTook = regexp.MustCompile(`phase done.*phase=fetching.* took=(\S+)`)

func benchFetch(b *testing.B, fill func(a *tnode) int64) {
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		h := newHarness(b)
		a, t := h.pair("")
		total := fill(a)
		a.start()
		eventually(b, waitLimit, "the source's generation", func() error {
			if js, _ := a.jobStatus("conf"); js.Generation == 0 {
				return fmt.Errorf("source job %+v", js)
			}
			return nil
		})
		if p := os.Getenv("PBXSYNC_BENCH_CPUPROFILE"); p != "" {
			f, err := os.Create(p)
			if err != nil {
				b.Fatal(err)
			}
			if err := pprof.StartCPUProfile(f); err != nil {
				b.Fatal(err)
			}
			defer f.Close()
			defer pprof.StopCPUProfile()
		}
		cpu0 := cpuTime(b)
		t0 := time.Now()
		b.StartTimer()
		t.start()
		eventually(b, 10*time.Minute, "the target's apply", func() error {
			if js, _ := t.jobStatus("conf"); js.State != "good" || js.Generation == 0 {
				return fmt.Errorf("target job %+v", js)
			}
			return nil
		})
		b.StopTimer()
		took, cpu := time.Since(t0), cpuTime(b)-cpu0
		pprof.StopCPUProfile()
		mb := float64(total) / 1e6
		// the target logs a phase only when it took more than
		// progressAfter: a faster fetch has no line, and only the take
		// is reported
		if m := fetchTook.FindStringSubmatch(t.log.String()); m != nil {
			fetch, err := time.ParseDuration(m[1])
			if err != nil {
				b.Fatal(err)
			}
			b.ReportMetric(fetch.Seconds(), "fetch-s")
			b.ReportMetric(mb/fetch.Seconds(), "fetch-MB/s")
		} else if took > 2*progressAfter {
			b.Fatalf("the take lasted %v and the target logged no fetch phase", took)
		}
		b.ReportMetric(took.Seconds(), "take-s")
		b.ReportMetric(cpu.Seconds()*1e3/mb, "cpu-ms/MB")
		b.ReportMetric(0, "ns/op")
		if err := diffTrees(a.tree, t.tree); err != nil {
			b.Fatalf("target differs from the source: %v", err)
		}
		a.stop()
		t.stop()
	}
}

// benchFiles is the number of files PBXSYNC_BENCH_FILES asks for, def
// when it is unset.
func benchFiles(b *testing.B, def int) int {
	v := os.Getenv("PBXSYNC_BENCH_FILES")
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 100 {
		b.Fatalf("PBXSYNC_BENCH_FILES=%q: want a number of files ≥ 100", v)
	}
	return n
}
