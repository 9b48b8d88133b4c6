package syncer

// Whole-agent benchmarks: two in-process agents over real QUIC on
// 127.0.0.1 with default settings.
//
//	go test -run '^$' -bench ChangeToApplied -benchtime 1x ./syncer/
//	go test -run '^$' -bench InitialSync -benchtime 1x ./syncer/
//
// PBXSYNC_BENCH_LOG=1 prints more: the latency percentiles of
// BenchmarkChangeToApplied, the agents' generation log lines of
// BenchmarkInitialSync (where the time went).

import (
	"bytes"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"slices"
	"strings"
	"testing"
	"time"
)

// editsPerRound is how many edits one benchmark iteration times.
const editsPerRound = 100

// BenchmarkChangeToApplied measures change→applied latency: the time from
// appending a line to extensions.conf on the source to the moment the
// target's file has the same content (polled every millisecond), over 100
// edits per iteration. It reports the median and the 99th percentile.
func BenchmarkChangeToApplied(b *testing.B) {
	h := newHarness(b)
	a, t := h.pair("")
	want := []byte(seedExtensions)
	a.write("extensions.conf", seedExtensions, 0o644)
	a.start()
	t.start()
	converged(b, "initial sync", a, t)
	waitGood(b, t, "conf")
	target := t.path("extensions.conf")

	var lat []time.Duration
	var starts []time.Time
	genLinesBefore := len(logTimes(a.log.String(), `msg="new generation"`))
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		for k := range editsPerRound {
			line := fmt.Sprintf("exten => %d,1,Dial(PJSIP/%d)\n", 1000+i*editsPerRound+k, k)
			want = append(want, line...)
			t0 := time.Now()
			starts = append(starts, t0)
			a.appendTo("extensions.conf", line)
			for {
				got, err := os.ReadFile(target)
				if err == nil && bytes.Equal(got, want) {
					break
				}
				if time.Since(t0) > waitLimit {
					b.Fatalf("edit %d not on the target after %s", len(lat), waitLimit)
				}
				time.Sleep(time.Millisecond)
			}
			lat = append(lat, time.Since(t0))
		}
	}
	b.StopTimer()
	slices.Sort(lat)
	ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
	pct := func(p float64) time.Duration {
		return lat[max(0, int(math.Ceil(p*float64(len(lat))))-1)]
	}
	if os.Getenv("PBXSYNC_BENCH_LOG") != "" {
		b.Logf("latencies: p10 %s p25 %s p50 %s p75 %s p90 %s p95 %s p99 %s max %s", pct(0.10), pct(0.25), pct(0.50), pct(0.75), pct(0.90), pct(0.95), pct(0.99), lat[len(lat)-1])
	}
	b.ReportMetric(ms(pct(0.50)), "p50-ms")
	b.ReportMetric(ms(pct(0.99)), "p99-ms")
	b.ReportMetric(ms(lat[len(lat)-1]), "max-ms")
	// Where the time goes: the source's part (write to its "new
	// generation" log line: debounce, scan, store), the target's own part
	// (fetch, store, apply, checks: its "applied … took=" log) and what one
	// fsync costs here, since every step that must survive a crash pays
	// one or more.
	if gens := logTimes(a.log.String(), `msg="new generation"`)[genLinesBefore:]; len(gens) == len(starts) {
		src := make([]time.Duration, len(gens))
		for i := range gens {
			src[i] = gens[i].Sub(starts[i])
		}
		slices.Sort(src)
		b.ReportMetric(ms(src[len(src)/2]), "source-p50-ms")
	}
	if took := appliedTook(t.log.String()); len(took) > 0 {
		slices.Sort(took)
		b.ReportMetric(ms(took[len(took)/2]), "target-p50-ms")
	}
	b.ReportMetric(ms(fsyncP50(b, t.data)), "fsync-p50-ms")
	b.ReportMetric(0, "ns/op") // an iteration is 100 edits; the latencies are what counts
}

// logTimes returns the time= of every log line containing what.
func logTimes(log, what string) []time.Time {
	var out []time.Time
	for _, line := range strings.Split(log, "\n") {
		if !strings.Contains(line, what) {
			continue
		}
		if v, ok := strings.CutPrefix(strings.Fields(line)[0], "time="); ok {
			if tm, err := time.Parse(time.RFC3339Nano, v); err == nil {
				out = append(out, tm)
			}
		}
	}
	return out
}

// appliedTook returns the took= durations of a target's "applied" lines.
func appliedTook(log string) []time.Duration {
	var out []time.Duration
	for _, line := range strings.Split(log, "\n") {
		if !strings.Contains(line, "msg=applied ") {
			continue
		}
		for _, f := range strings.Fields(line) {
			if v, ok := strings.CutPrefix(f, "took="); ok {
				if d, err := time.ParseDuration(v); err == nil {
					out = append(out, d)
				}
			}
		}
	}
	return out
}

// fsyncP50 is the median time to write and fsync a small file in dir.
func fsyncP50(b *testing.B, dir string) time.Duration {
	f, err := os.CreateTemp(dir, "fsync-probe-*")
	if err != nil {
		b.Fatal(err)
	}
	defer os.Remove(f.Name())
	defer f.Close()
	var ds []time.Duration
	for range 21 {
		t0 := time.Now()
		if _, err := f.Write([]byte("exten => 100,1,Answer()\n")); err != nil {
			b.Fatal(err)
		}
		if err := f.Sync(); err != nil {
			b.Fatal(err)
		}
		ds = append(ds, time.Since(t0))
	}
	slices.Sort(ds)
	return ds[len(ds)/2]
}

// BenchmarkInitialSync measures how long a new target takes to hold a
// source tree of 1,000 files of 1 KB to 200 KB (half random like sound
// files, half text like configs): from starting both agents until the
// target's job has applied the source's generation. MB/s is over the
// tree's size.
func BenchmarkInitialSync(b *testing.B) {
	const files = 1000
	r := rand.New(rand.NewPCG(7, 7))
	type spec struct {
		rel  string
		data []byte
	}
	var tree []spec
	var total int64
	for i := range files {
		size := 1<<10 + r.IntN(199<<10)
		var data []byte
		if i%2 == 0 {
			data = randBytes(r.Uint64(), size)
		} else {
			var sb strings.Builder
			for sb.Len() < size {
				fmt.Fprintf(&sb, "exten => %d,%d,Dial(PJSIP/%d,30,tT)\n", r.IntN(100000), r.IntN(9)+1, r.IntN(10000))
			}
			data = []byte(sb.String()[:size])
		}
		tree = append(tree, spec{fmt.Sprintf("dir%02d/sub%d/file%04d.dat", i%25, i%3, i), data})
		total += int64(size)
	}
	b.SetBytes(total)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		h := newHarness(b)
		a, t := h.pair("")
		for _, f := range tree {
			a.write(f.rel, string(f.data), 0o644)
		}
		b.StartTimer()
		a.start()
		t.start()
		eventually(b, 5*time.Minute, "initial sync", func() error {
			js, ok := t.jobStatus("conf")
			if !ok || js.State != "good" || js.Generation == 0 {
				return fmt.Errorf("target job %+v", js)
			}
			return nil
		})
		b.StopTimer()
		if os.Getenv("PBXSYNC_BENCH_LOG") != "" {
			for _, n := range []*tnode{a, t} {
				for _, l := range strings.Split(n.log.String(), "\n") {
					if strings.Contains(l, "generation") || strings.Contains(l, "starting") || strings.Contains(l, "peer up") || strings.Contains(l, "phase done") {
						b.Log(l)
					}
				}
			}
		}
		if err := diffTrees(a.tree, t.tree); err != nil {
			b.Fatalf("target differs from the source after the sync: %v", err)
		}
		a.stop()
		t.stop()
		b.StartTimer()
	}
}
