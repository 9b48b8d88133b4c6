package syncer

import (
	"bytes"
	"fmt"
	"os"
	"runtime"
	"runtime/pprof"
	"slices"
	"testing"
	"time"
)

// BenchmarkBigJobEdit measures a one-line edit of one file in a large job
// (PBXSYNC_BENCH_FILES files, 20,000 by default, in 100 directories), two
// in-process agents on 127.0.0.1: change→applied per edit, polled every
// millisecond on the target's file, 20 edits per iteration. Both trees
// start equal, so the initial sync moves no content. It reports the
// median, and the live heap of the process after the edits (both agents).
// PBXSYNC_BENCH_CPUPROFILE=FILE writes a CPU profile of the edits only
// (not of the set-up and the initial sync):
//
//	PBXSYNC_BENCH_CPUPROFILE=/tmp/edit.prof go test -run '^$' -bench BigJobEdit -benchtime 1x ./syncer/
func BenchmarkBigJobEdit(b *testing.B) {
	files := benchFiles(b)
	h := newHarness(b)
	a, t := h.pair("")
	name := func(i int) string { return fmt.Sprintf("site%03d/endpoint%05d.conf", i%100, i) }
	body := func(i int) string {
		return fmt.Sprintf("[%d]\ntype=endpoint\ncontext=from-internal\nallow=ulaw,alaw\nauth=%d\naors=%d\n", i, i, i)
	}
	for i := range files {
		a.write(name(i), body(i), 0o644)
		t.write(name(i), body(i), 0o644)
	}
	a.start()
	t.start()
	converged(b, "initial sync", a, t)
	waitGood(b, t, "conf")

	const edits = 20
	rel := name(files / 2)
	content := []byte(body(files / 2))
	var lat []time.Duration
	if p := os.Getenv("PBXSYNC_BENCH_CPUPROFILE"); p != "" {
		f, err := os.Create(p)
		if err != nil {
			b.Fatal(err)
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			b.Fatal(err)
		}
		defer pprof.StopCPUProfile()
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		for k := range edits {
			content = append(content, fmt.Sprintf("callerid=%d <%d>\n", i*edits+k, k)...)
			t0 := time.Now()
			a.replace(rel, content, 0o644)
			for {
				got, err := os.ReadFile(t.path(rel))
				if err == nil && bytes.Equal(got, content) {
					break
				}
				if time.Since(t0) > waitLimit {
					b.Fatalf("edit %d not on the target after %s", len(lat), waitLimit)
				}
				time.Sleep(time.Millisecond)
			}
			lat = append(lat, time.Since(t0))
			time.Sleep(50 * time.Millisecond) // the target's result reaches the source
		}
	}
	b.StopTimer()
	slices.Sort(lat)
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(lat[len(lat)-1].Microseconds())/1000, "max-ms")
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	b.ReportMetric(float64(ms.HeapAlloc)/(1<<20), "heap-MiB")
	b.ReportMetric(0, "ns/op")
}
