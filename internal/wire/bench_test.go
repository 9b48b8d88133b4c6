package wire

import (
	"bytes"
	"runtime"
	"testing"
)

// BenchmarkDecodeCompleteAnnounce decodes a complete announcement of
// 20,000 items and reports the heap its decoded items keep (held-B/item:
// what a target holds until it has admitted them).
func BenchmarkDecodeCompleteAnnounce(b *testing.B) {
	c := newCodec(b)
	var buf bytes.Buffer
	if err := c.Write(&buf, sampleAnnounce(20000)); err != nil {
		b.Fatal(err)
	}
	frame := buf.Bytes()
	var held float64
	for b.Loop() {
		var ms runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&ms)
		before := ms.HeapAlloc
		m, err := c.Read(bytes.NewReader(frame))
		if err != nil {
			b.Fatal(err)
		}
		runtime.GC()
		runtime.ReadMemStats(&ms)
		held = float64(ms.HeapAlloc-before) / float64(len(m.(*Announce).Items))
		runtime.KeepAlive(m)
	}
	b.ReportMetric(held, "held-B/item")
}

// BenchmarkEncodeAnnouncePart encodes one announcement part's worth of
// items (PartBytes of JSON) and reports the heap the codec keeps after
// it (held-B: the encoder's tables and history, kept for the agent's
// life).
func BenchmarkEncodeAnnouncePart(b *testing.B) {
	m := sampleAnnounce(20000)
	var ms runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&ms)
	before := ms.HeapAlloc
	c := newCodec(b)
	var n int
	for b.Loop() {
		f, err := c.Encode(m)
		if err != nil {
			b.Fatal(err)
		}
		n = len(f)
	}
	b.ReportMetric(float64(n), "frame-B")
	runtime.GC()
	runtime.ReadMemStats(&ms)
	b.ReportMetric(float64(ms.HeapAlloc-before), "held-B")
	runtime.KeepAlive(c)
}

// TestCodecRelease: once a codec compressed an announcement part, its
// encoder keeps ~3 MiB of tables and history; Release lets go of them
// (the codec then holds less than 512 KiB more than before it was made),
// and the codec compresses again afterwards, to the same frame.
func TestCodecRelease(t *testing.T) {
	m := sampleAnnounce(20000)
	heap := func() int64 {
		var ms runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&ms)
		return int64(ms.HeapAlloc)
	}
	before := heap()
	c := newCodec(t)
	f1, err := c.Encode(m)
	if err != nil {
		t.Fatal(err)
	}
	if f1[2]&flagZstd == 0 {
		t.Fatal("the announcement part was not compressed")
	}
	f1 = nil
	used := heap() - before
	c.Release()
	released := heap() - before
	if used < 1<<20 || released > 512<<10 {
		t.Fatalf("the codec holds %d bytes after compressing, %d after Release; want over 1 MiB, then under 512 KiB", used, released)
	}
	f2, err := c.Encode(m)
	if err != nil {
		t.Fatal(err)
	}
	got, err := c.Decode(f2)
	if err != nil {
		t.Fatal(err)
	}
	if a := got.(*Announce); len(a.Items) != len(m.Items) || a.Items[len(a.Items)-1].Path != m.Items[len(m.Items)-1].Path {
		t.Fatal("a frame compressed after Release does not decode to the message")
	}
	runtime.KeepAlive(c)
}

// BenchmarkFromIndex converts an index of 100,000 files to its
// announcement's wire items and reports the bytes allocated per item
// beside the items themselves (the conversion's transient copies).
func BenchmarkFromIndex(b *testing.B) {
	x := sampleIndex(100000)
	for b.Loop() {
		runtime.KeepAlive(FromIndex(x))
	}
}
