package store

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"pbxsync/internal/index"
)

// benchContent is 4 MiB that compresses roughly like configuration and
// sound files mixed: half random, half repetitive text.
func benchContent() []byte {
	line := []byte("exten => _1XXX,1,Dial(PJSIP/${EXTEN},30)\n")
	return append(randBytes(99, 2<<20), bytes.Repeat(line, (2<<20)/len(line)+1)[:2<<20]...)
}

func BenchmarkPutReader(b *testing.B) {
	s := newTestStore(b)
	content := benchContent()
	ctx := context.Background()
	b.SetBytes(int64(len(content)))
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		// Distinct content every round, so every Put compresses and
		// commits a new blob.
		content[0], content[1], content[2] = byte(i), byte(i>>8), byte(i>>16)
		if _, _, err := s.PutReader(ctx, bytes.NewReader(content)); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkOpen(b *testing.B) {
	s := newTestStore(b)
	content := benchContent()
	h := put(b, s, content)
	ctx := context.Background()
	buf := make([]byte, 256<<10)
	b.SetBytes(int64(len(content)))
	b.ReportAllocs()
	for b.Loop() {
		rc, err := s.Open(ctx, h)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := io.CopyBuffer(io.Discard, rc, buf); err != nil {
			b.Fatal(err)
		}
		rc.Close()
	}
}

func BenchmarkOpenSmall(b *testing.B) {
	s := newTestStore(b)
	content := []byte("[general]\nudpbindaddr=0.0.0.0\n")
	h := put(b, s, content)
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		rc, err := s.Open(ctx, h)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := io.Copy(io.Discard, rc); err != nil {
			b.Fatal(err)
		}
		rc.Close()
	}
}

// benchJob records one generation of n small files (blobs put and
// recorded in one batch) and returns its index and number.
func benchJob(b testing.TB, s *Store, n int) (index.Index, uint64) {
	b.Helper()
	ctx := context.Background()
	x := index.New(0)
	for i := range n {
		p := fmt.Sprintf("site%03d/endpoint%04d.conf", i/1000, i%1000)
		c := []byte(fmt.Sprintf("[%d]\ntype=endpoint\ncontext=from-internal\n", i))
		h, sz, err := s.PutReader(ctx, bytes.NewReader(c))
		if err != nil {
			b.Fatal(err)
		}
		x.Set(index.Item{Path: p, Kind: index.KindFile, Size: sz, Mode: 0o640, MTime: int64(i), Hash: h})
	}
	g := &Generation{Job: "j", Origin: "a", State: StateGood, Index: x}
	num, err := s.AddGeneration(ctx, g)
	if err != nil {
		b.Fatal(err)
	}
	return x, num
}

// BenchmarkOneFileGeneration: record a one-file change (put the new
// content, record the generation by its change) in a job of 1,000 and of
// 100,000 files. The time (one commit with one fdatasync) should not
// depend on the job's size.
func BenchmarkOneFileGeneration(b *testing.B) {
	for _, n := range []int{1000, 100000} {
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			s := newTestStore(b)
			ctx := context.Background()
			x, base := benchJob(b, s, n)
			it, _ := x.Get("site000/endpoint0007.conf")
			b.ResetTimer()
			for i := 0; b.Loop(); i++ {
				h, sz, err := s.PutReader(ctx, bytes.NewReader([]byte(fmt.Sprintf("edit %d\n", i))))
				if err != nil {
					b.Fatal(err)
				}
				it.Hash, it.Size = h, sz
				g := &Generation{Job: "j", Origin: "a", State: StateGood, Changed: []string{it.Path}}
				if base, err = s.AddGenerationChanges(ctx, g, base, []index.Item{it}, nil); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkPutSmall stores distinct 1.5 KB configuration files, the
// blobs of an initial sync of many small files.
func BenchmarkPutSmall(b *testing.B) {
	s := newTestStore(b)
	line := []byte("[endpoint-1001]\ntype=endpoint\ncontext=internal\nallow=ulaw,alaw\n")
	content := bytes.Repeat(line, 1500/len(line)+1)[:1500]
	ctx := context.Background()
	b.SetBytes(int64(len(content)))
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		copy(content, fmt.Sprintf("; %12d\n", i))
		if _, _, err := s.PutReader(ctx, bytes.NewReader(content)); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkPutScanStates: the first save of a job's scan state after an
// initial sync (every path new, one transaction).
func BenchmarkPutScanStates(b *testing.B) {
	for _, n := range []int{20000, 100000} {
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			set := make(map[string][]byte, n)
			for i := range n {
				set[fmt.Sprintf("site%03d/endpoint%04d.conf", i/1000, i%1000)] = make([]byte, 80)
			}
			for b.Loop() {
				b.StopTimer()
				s := newTestStore(b)
				b.StartTimer()
				if err := s.PutScanStates("j", []string{""}, set); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkFirstGeneration: record the first generation of a job of
// 100,000 small files whose blobs are stored (an initial sync's record),
// and report the most heap in use while it records (peak-heap-MB,
// sampled every 2 ms; the index itself is ~20 MB of it).
func BenchmarkFirstGeneration(b *testing.B) {
	ctx := context.Background()
	var peak uint64
	for b.Loop() {
		b.StopTimer()
		s := newTestStore(b)
		x := storedConfs(b, s, 100000)
		runtime.GC()
		stop := sampleHeap(&peak)
		b.StartTimer()
		if _, err := s.AddGeneration(ctx, &Generation{Job: "j", Origin: "a", State: StateGood, Index: x}); err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		stop()
		b.StartTimer()
	}
	b.ReportMetric(float64(peak)/(1<<20), "peak-heap-MB")
}

// BenchmarkFirstGenerationAsSource is BenchmarkFirstGeneration as a
// source's scan leaves it: the last 3,000 blobs still pending (put after
// the last flush) and every path in the changed list; peak-heap-MB is the
// most heap in use while it records (run with GOGC=10 to see the live
// heap: the flush's and the record's bbolt nodes, the changes, the list).
func BenchmarkFirstGenerationAsSource(b *testing.B) {
	ctx := context.Background()
	var peak uint64
	for b.Loop() {
		b.StopTimer()
		s, x, changed := scannedAsSource(ctx, b)
		runtime.GC()
		stop := sampleHeap(&peak)
		b.StartTimer()
		if _, err := s.AddGeneration(ctx, &Generation{Job: "j", Origin: "a", State: StateGood, Index: x, Changed: changed}); err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		stop()
		b.StartTimer()
	}
	b.ReportMetric(float64(peak)/(1<<20), "peak-heap-MB")
}

// scannedAsSource returns a new store as a source's first scan of
// 100,000 small files leaves it, with the scan's index and changed list:
// the last 3,000 blobs still pending (put after the last flush).
func scannedAsSource(ctx context.Context, b *testing.B) (*Store, index.Index, []string) {
	b.Helper()
	s := newTestStore(b)
	x := index.New(0)
	changed := make([]string, 0, 100000)
	for i := range 100000 {
		if i == 97000 {
			if err := s.Sync(); err != nil {
				b.Fatal(err)
			}
		}
		p := fmt.Sprintf("site%03d/endpoint%04d.conf", i/1000, i%1000)
		h, sz, err := s.PutReader(ctx, bytes.NewReader([]byte(fmt.Sprintf("[%d]\ntype=endpoint\n", i))))
		if err != nil {
			b.Fatal(err)
		}
		x.Set(index.Item{Path: p, Kind: index.KindFile, Size: sz, Mode: 0o640, MTime: int64(i), Hash: h})
		changed = append(changed, p)
	}
	return s, x, changed
}

// sampleHeap raises *peak to the heap in use every 2 ms until the
// returned function is called (and has returned).
func sampleHeap(peak *uint64) (stop func()) {
	quit, done := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		t := time.NewTicker(2 * time.Millisecond)
		defer t.Stop()
		var ms runtime.MemStats
		for {
			select {
			case <-quit:
				return
			case <-t.C:
			}
			runtime.ReadMemStats(&ms)
			*peak = max(*peak, ms.HeapInuse)
		}
	}()
	return func() { close(quit); <-done }
}

// BenchmarkInitialSyncBlobs stores 60,000 distinct small files one after
// another (the blobs a target fetches in an initial sync of small files)
// and reports the highest heap in use while it does (peak-heap-MB: the
// commits of the pending batches), the highest growth of the file-backed
// resident set (peak-rss-file-growth-MB: mapped database pages) and the
// time per blob.
func BenchmarkInitialSyncBlobs(b *testing.B) {
	const n = 60000
	line := []byte("[endpoint-1001]\ntype=endpoint\ncontext=internal\nallow=ulaw,alaw\n")
	content := bytes.Repeat(line, 1500/len(line)+1)[:1500]
	ctx := context.Background()
	var peak uint64
	var rss int64
	for b.Loop() {
		b.StopTimer()
		s := newTestStore(b)
		runtime.GC()
		before := rssFile(b)
		stop := make(chan struct{})
		done := make(chan struct{})
		go func() {
			defer close(done)
			t := time.NewTicker(2 * time.Millisecond)
			defer t.Stop()
			var ms runtime.MemStats
			for {
				select {
				case <-stop:
					return
				case <-t.C:
				}
				runtime.ReadMemStats(&ms)
				peak = max(peak, ms.HeapInuse)
				rss = max(rss, rssFile(b)-before)
			}
		}()
		b.StartTimer()
		for i := range n {
			copy(content, fmt.Sprintf("; %12d\n", i))
			if _, _, err := s.PutReader(ctx, bytes.NewReader(content)); err != nil {
				b.Fatal(err)
			}
		}
		if err := s.Sync(); err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		close(stop)
		<-done
		_ = s.Close()
		b.StartTimer()
	}
	b.ReportMetric(float64(peak)/(1<<20), "peak-heap-MB")
	b.ReportMetric(float64(rss)/(1<<20), "peak-rss-file-growth-MB")
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/blob")
}

// BenchmarkServeSmallBlobs reads 10,000 small blobs one at a time in
// random order, as a source serves an initial sync's fetches (each read
// a lookup of its location in its own transaction, then a pread of its
// pack), and reports how much the file-backed resident set grew
// (rss-file-growth-MB: with small blobs inside bbolt, the mapped pages
// around every blob read; dropping them every 32 reads made it 7× slower,
// see docs/performance.md, fifth pass).
func BenchmarkServeSmallBlobs(b *testing.B) {
	s := newTestStore(b)
	ctx := context.Background()
	var hs []index.Hash
	for i := range 10000 {
		hs = append(hs, put(b, s, randBytes(uint64(i), 1500)))
	}
	if err := s.Sync(); err != nil {
		b.Fatal(err)
	}
	buf := make([]byte, 4096)
	if err := s.ReleaseMapped(); err != nil {
		b.Fatal(err)
	}
	before := rssFile(b)
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		rc, err := s.Open(ctx, hs[(i*7919)%len(hs)])
		if err != nil {
			b.Fatal(err)
		}
		if _, err := io.CopyBuffer(io.Discard, rc, buf); err != nil {
			b.Fatal(err)
		}
		rc.Close()
	}
	b.StopTimer()
	b.ReportMetric(float64(rssFile(b)-before)/(1<<20), "rss-file-growth-MB")
}

// rssFile returns the process's file-backed resident set (RssFile of
// /proc/self/status), 0 where there is none.
func rssFile(b *testing.B) int64 {
	b.Helper()
	st, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for line := range strings.Lines(string(st)) {
		if f := strings.Fields(line); len(f) == 3 && f[0] == "RssFile:" {
			kb, _ := strconv.ParseInt(f[1], 10, 64)
			return kb << 10
		}
	}
	return 0
}

// BenchmarkGenerationRead: read back the index of a 100,000-file
// generation, an initial sync's (what a restart does, with its list of
// every path changed; and, without that list, GenerationIndex, what a job
// whose index was let go of while idle does at its next event; see
// syncer's park.go).
func BenchmarkGenerationRead(b *testing.B) {
	ctx := context.Background()
	s := newTestStore(b)
	x := storedConfs(b, s, 100000)
	changed := slices.Sorted(x.Paths()) // as a source records its first generation
	n, err := s.AddGeneration(ctx, &Generation{Job: "j", Origin: "a", State: StateGood, Index: x, Changed: changed})
	if err != nil {
		b.Fatal(err)
	}
	for name, read := range map[string]func(string, uint64) (*Generation, error){"Generation": s.Generation, "GenerationIndex": s.GenerationIndex} {
		b.Run(name, func(b *testing.B) {
			for b.Loop() {
				g, err := read("j", n)
				if err != nil {
					b.Fatal(err)
				}
				if g.Index.Len() != x.Len() {
					b.Fatalf("read %d items, want %d", g.Index.Len(), x.Len())
				}
			}
		})
	}
}

// storedConfs puts n small .conf files in s (1,000 a directory), made
// durable, and returns their index.
func storedConfs(b *testing.B, s *Store, n int) index.Index {
	x := index.New(n)
	for i := range n {
		p := fmt.Sprintf("site%03d/endpoint%04d.conf", i/1000, i%1000)
		h, sz, err := s.PutReader(context.Background(), bytes.NewReader([]byte(fmt.Sprintf("[%d]\ntype=endpoint\n", i))))
		if err != nil {
			b.Fatal(err)
		}
		x.Set(index.Item{Path: p, Kind: index.KindFile, Size: sz, Mode: 0o640, MTime: int64(i), Hash: h})
	}
	if err := s.Sync(); err != nil {
		b.Fatal(err)
	}
	return x
}
