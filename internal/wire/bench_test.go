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
