package httpapi

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"pbxsync/remotemon"
	"pbxsync/syncer"
)

type fakeSource struct {
	mu      sync.Mutex
	st      syncer.Status
	healthy error
}

func (f *fakeSource) Status() syncer.Status {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.st
}

func (f *fakeSource) Healthy(context.Context) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.healthy
}

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func TestMetricsMoveAndHealthFlips(t *testing.T) {
	src := &fakeSource{st: syncer.Status{Node: "a",
		Peers: []remotemon.PeerStatus{{Name: "b", Connected: true, RTT: 2 * time.Millisecond}},
		Jobs:  []syncer.JobStatus{{Name: "conf", Generation: 1, State: "good"}}}}
	s, err := Listen(Options{Addr: "127.0.0.1:0", Source: src, Log: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go s.Serve(ctx)
	base := "http://" + s.Addr().String()

	code, body := get(t, base+"/metrics")
	if code != 200 || !strings.Contains(body, `pbxsync_job_generation{job="conf"} 1`) || !strings.Contains(body, `pbxsync_peer_up{peer="b"} 1`) {
		t.Fatalf("metrics (%d):\n%s", code, body)
	}
	src.mu.Lock()
	src.st.Jobs[0].Generation, src.st.Jobs[0].Applied, src.st.Jobs[0].BytesReceived = 2, 1, 4096
	h := syncer.Histogram{Buckets: []float64{0.05, 0.1}, Counts: []uint64{1, 1}, Sum: 0.03, Count: 1}
	src.st.Jobs[0].Latency = &h
	src.st.Peers[0].Connected = false
	src.mu.Unlock()
	_, body = get(t, base+"/metrics")
	for _, want := range []string{`pbxsync_job_generation{job="conf"} 2`, `pbxsync_job_applied_total{job="conf"} 1`,
		`pbxsync_job_bytes_received_total{job="conf"} 4096`, `pbxsync_job_change_to_applied_seconds_bucket{job="conf",le="0.05"} 1`,
		`pbxsync_peer_up{peer="b"} 0`} {
		if !strings.Contains(body, want) {
			t.Errorf("metrics lack %s", want)
		}
	}

	if code, _ := get(t, base+"/healthz"); code != 200 {
		t.Fatalf("healthz %d on a healthy agent", code)
	}
	src.mu.Lock()
	src.healthy = errors.New("asterisk: connection refused")
	src.mu.Unlock()
	code, body = get(t, base+"/healthz")
	if code != http.StatusServiceUnavailable || !strings.Contains(body, "asterisk") {
		t.Fatalf("healthz with Asterisk down: %d %q", code, body)
	}
}

// TestMetricsShowProgress: a generation in progress on this target and one
// a target of this node's source job reported are gauges labelled by job,
// target and phase; they go when the progress goes.
func TestMetricsShowProgress(t *testing.T) {
	src := &fakeSource{st: syncer.Status{Node: "b", Jobs: []syncer.JobStatus{
		{Name: "sounds", Role: "target", Progress: &syncer.Progress{Phase: "fetching", Files: 12, FilesTotal: 100, Bytes: 1 << 20, BytesTotal: 8 << 20, ETASeconds: 7.5}},
		{Name: "conf", Role: "source", Targets: []syncer.TargetStatus{{Name: "c", State: "applying",
			Progress: &syncer.Progress{Phase: "applying", Files: 3, FilesTotal: 4, Bytes: 30, BytesTotal: 40, ETASeconds: -1}}}},
	}}}
	s, err := Listen(Options{Addr: "127.0.0.1:0", Source: src, Log: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go s.Serve(ctx)
	base := "http://" + s.Addr().String()
	_, body := get(t, base+"/metrics")
	for _, want := range []string{
		`pbxsync_sync_progress_done_files{job="sounds",phase="fetching",target="b"} 12`,
		`pbxsync_sync_progress_all_files{job="sounds",phase="fetching",target="b"} 100`,
		`pbxsync_sync_progress_done_bytes{job="sounds",phase="fetching",target="b"} 1.048576e+06`,
		`pbxsync_sync_progress_all_bytes{job="sounds",phase="fetching",target="b"} 8.388608e+06`,
		`pbxsync_sync_progress_eta_seconds{job="sounds",phase="fetching",target="b"} 7.5`,
		`pbxsync_sync_progress_done_files{job="conf",phase="applying",target="c"} 3`,
		`pbxsync_sync_progress_eta_seconds{job="conf",phase="applying",target="c"} -1`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("metrics lack %s", want)
		}
	}
	src.mu.Lock()
	src.st.Jobs[0].Progress, src.st.Jobs[1].Targets[0].Progress = nil, nil
	src.mu.Unlock()
	if _, body = get(t, base+"/metrics"); strings.Contains(body, "pbxsync_sync_progress") {
		t.Errorf("progress gauges stay after the progress ended:\n%s", body)
	}
}
