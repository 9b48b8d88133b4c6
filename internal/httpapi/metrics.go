package httpapi

import (
	"github.com/prometheus/client_golang/prometheus"

	"pbxsync/syncer"
)

var (
	descPeerUp   = prometheus.NewDesc("pbxsync_peer_up", "1 when the peer has a live connection.", []string{"peer"}, nil)
	descPeerRTT  = prometheus.NewDesc("pbxsync_peer_rtt_seconds", "Round-trip time to the peer.", []string{"peer"}, nil)
	descPeerSent = prometheus.NewDesc("pbxsync_peer_wire_bytes_sent_total", "QUIC bytes sent to the peer.", []string{"peer"}, nil)
	descPeerRecv = prometheus.NewDesc("pbxsync_peer_wire_bytes_received_total", "QUIC bytes received from the peer.", []string{"peer"}, nil)
	descJobGen   = prometheus.NewDesc("pbxsync_job_generation", "The job's current generation on this node.", []string{"job"}, nil)
	descJobBad   = prometheus.NewDesc("pbxsync_job_bad", "1 when the job's newest generation is bad or the job has an error.", []string{"job"}, nil)
	descJobSent  = prometheus.NewDesc("pbxsync_job_bytes_sent_total", "Content bytes sent for the job.", []string{"job"}, nil)
	descJobRecv  = prometheus.NewDesc("pbxsync_job_bytes_received_total", "Content bytes received for the job.", []string{"job"}, nil)
	descJobLSent = prometheus.NewDesc("pbxsync_job_logical_bytes_sent_total", "Content bytes (file sizes) the sent bytes stood for.", []string{"job"}, nil)
	descJobLRecv = prometheus.NewDesc("pbxsync_job_logical_bytes_received_total", "Content bytes (file sizes) the received bytes stood for.", []string{"job"}, nil)
	descJobApply = prometheus.NewDesc("pbxsync_job_applied_total", "Generations applied and good on this node.", []string{"job"}, nil)
	descJobRoll  = prometheus.NewDesc("pbxsync_job_rollbacks_total", "Generations rolled back on this node.", []string{"job"}, nil)
	descJobLat   = prometheus.NewDesc("pbxsync_job_change_to_applied_seconds", "From a change at its origin to applied and checked here.", []string{"job"}, nil)

	// Progress of a generation that takes a target more than a second:
	// on the target itself (target = this node; before a first
	// generation, its fetch of what the source offers as it scans) and,
	// on its source, as the target last reported it; on a source, its
	// own scan for a new generation (phase scanning, target = this node:
	// what it read so far, the same in all) and its record of it (phase
	// recording: changes recorded in its store). Present only while one is
	// under way.
	progLabels       = []string{"job", "target", "phase"}
	descProgFiles    = prometheus.NewDesc("pbxsync_sync_progress_done_files", "Files of the phase (fetching, recording, applying, waiting, scanning) of a generation in progress that are done (recording: changes recorded in the store).", progLabels, nil)
	descProgFilesTot = prometheus.NewDesc("pbxsync_sync_progress_all_files", "Files of the phase of a generation in progress in all.", progLabels, nil)
	descProgBytes    = prometheus.NewDesc("pbxsync_sync_progress_done_bytes", "Bytes (file sizes) of the phase of a generation in progress that are done.", progLabels, nil)
	descProgBytesTot = prometheus.NewDesc("pbxsync_sync_progress_all_bytes", "Bytes (file sizes) of the phase of a generation in progress in all.", progLabels, nil)
	descProgETA      = prometheus.NewDesc("pbxsync_sync_progress_eta_seconds", "Estimated time left in the phase of a generation in progress (-1: no estimate yet).", progLabels, nil)
)

// collector turns the agent's status into metrics at scrape time.
type collector struct{ src Source }

func (c *collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descPeerUp, descPeerRTT, descPeerSent, descPeerRecv, descJobGen, descJobBad, descJobSent, descJobRecv,
		descJobLSent, descJobLRecv, descJobApply, descJobRoll, descJobLat, descProgFiles, descProgFilesTot, descProgBytes, descProgBytesTot, descProgETA} {
		ch <- d
	}
}

func (c *collector) Collect(ch chan<- prometheus.Metric) {
	st := c.src.Status()
	for _, p := range st.Peers {
		up := 0.0
		if p.Connected {
			up = 1
		}
		ch <- prometheus.MustNewConstMetric(descPeerUp, prometheus.GaugeValue, up, p.Name)
		ch <- prometheus.MustNewConstMetric(descPeerRTT, prometheus.GaugeValue, p.RTT.Seconds(), p.Name)
		ch <- prometheus.MustNewConstMetric(descPeerSent, prometheus.CounterValue, float64(p.BytesSent), p.Name)
		ch <- prometheus.MustNewConstMetric(descPeerRecv, prometheus.CounterValue, float64(p.BytesReceived), p.Name)
	}
	for _, j := range st.Jobs {
		bad := 0.0
		if j.State == "bad" || j.State == "error" {
			bad = 1
		}
		ch <- prometheus.MustNewConstMetric(descJobGen, prometheus.GaugeValue, float64(j.Generation), j.Name)
		ch <- prometheus.MustNewConstMetric(descJobBad, prometheus.GaugeValue, bad, j.Name)
		ch <- prometheus.MustNewConstMetric(descJobSent, prometheus.CounterValue, float64(j.BytesSent), j.Name)
		ch <- prometheus.MustNewConstMetric(descJobRecv, prometheus.CounterValue, float64(j.BytesReceived), j.Name)
		ch <- prometheus.MustNewConstMetric(descJobLSent, prometheus.CounterValue, float64(j.LogicalBytesSent), j.Name)
		ch <- prometheus.MustNewConstMetric(descJobLRecv, prometheus.CounterValue, float64(j.LogicalBytesReceived), j.Name)
		ch <- prometheus.MustNewConstMetric(descJobApply, prometheus.CounterValue, float64(j.Applied), j.Name)
		ch <- prometheus.MustNewConstMetric(descJobRoll, prometheus.CounterValue, float64(j.RolledBack), j.Name)
		if h := j.Latency; h != nil {
			buckets := make(map[float64]uint64, len(h.Buckets))
			for i, b := range h.Buckets {
				buckets[b] = h.Counts[i]
			}
			ch <- prometheus.MustNewConstHistogram(descJobLat, h.Count, h.Sum, buckets, j.Name)
		}
		if j.Progress != nil {
			progress(ch, j.Name, st.Node, j.Progress)
		}
		for _, t := range j.Targets {
			if t.Progress != nil {
				progress(ch, j.Name, t.Name, t.Progress)
			}
		}
	}
}

// progress writes the gauges of one generation in progress.
func progress(ch chan<- prometheus.Metric, job, target string, p *syncer.Progress) {
	for _, g := range []struct {
		d *prometheus.Desc
		v float64
	}{
		{descProgFiles, float64(p.Files)}, {descProgFilesTot, float64(p.FilesTotal)},
		{descProgBytes, float64(p.Bytes)}, {descProgBytesTot, float64(p.BytesTotal)}, {descProgETA, p.ETASeconds},
	} {
		ch <- prometheus.MustNewConstMetric(g.d, prometheus.GaugeValue, g.v, job, target, p.Phase)
	}
}
