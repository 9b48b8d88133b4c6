package syncer

import "time"

// LatencyBuckets are the upper bounds, in seconds, of the change→applied
// histogram: from a LAN's tens of milliseconds to a slow WAN's seconds.
var latencyBuckets = []float64{0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10}

// Histogram counts durations into fixed buckets (cumulative counts, as
// Prometheus wants them).
type Histogram struct {
	Buckets []float64 `json:"buckets"` // upper bounds in seconds
	Counts  []uint64  `json:"counts"`  // observations ≤ each bound
	Sum     float64   `json:"sum"`     // seconds
	Count   uint64    `json:"count"`
}

func newHistogram() *Histogram {
	return &Histogram{Buckets: latencyBuckets, Counts: make([]uint64, len(latencyBuckets))}
}

// Observe adds one duration.
func (h *Histogram) Observe(d time.Duration) {
	s := d.Seconds()
	for i, b := range h.Buckets {
		if s <= b {
			h.Counts[i]++
		}
	}
	h.Sum += s
	h.Count++
}

// clone returns a copy that shares nothing with h.
func (h *Histogram) clone() *Histogram {
	if h == nil {
		return nil
	}
	c := *h
	c.Counts = append([]uint64(nil), h.Counts...)
	return &c
}
