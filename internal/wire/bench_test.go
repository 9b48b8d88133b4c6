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
