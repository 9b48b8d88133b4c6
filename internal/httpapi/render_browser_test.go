package httpapi

import (
	"context"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"pbxsync/internal/store"
	"pbxsync/internal/testwait"
	"pbxsync/remotemon"
	"pbxsync/syncer"
)

// chromium finds a Chromium for the browser tests (PBXSYNC_CHROMIUM, else
// on PATH); with CI set a missing one fails the test.
func chromium(t *testing.T) string {
	t.Helper()
	if p := os.Getenv("PBXSYNC_CHROMIUM"); p != "" {
		return p
	}
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome", "google-chrome-stable", "headless-shell"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	if os.Getenv("CI") != "" {
		t.Fatal("no Chromium for the dashboard's browser test (CI never skips it): install Debian's chromium (.ci/run does) or set PBXSYNC_CHROMIUM")
	}
	t.Skip("no Chromium on PATH (apt-get install chromium, or set PBXSYNC_CHROMIUM); CI fails here instead")
	return ""
}

// TestDashboardRendersStates: the page, given a status with what a real
// two-agent test rarely shows at the moment it looks (a held target job
// fetching a large generation, a source whose targets are applying and
// down, a peer down with its error), draws progress bars with the
// counters, the hold and its Resume button, the down rows and the errors.
func TestDashboardRendersStates(t *testing.T) {
	chrome := chromium(t)
	st, err := store.Open(filepath.Join(t.TempDir(), "store"), slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	now := time.Now()
	src := &fakeSource{st: syncer.Status{Node: "pbx2", ID: "ABCDEFGHIJKLMNOPQRSTUVWXYZ", Uptime: 3600,
		Peers: []remotemon.PeerStatus{
			{Name: "pbx1", Connected: true, RTTMillis: 1.25, LastSeen: now},
			{Name: "pbx3", Connected: false, DownSince: now.Add(-time.Minute), LastError: "timeout: no recent network activity"},
		},
		Jobs: []syncer.JobStatus{
			{Name: "sounds", Type: "files", Role: "target", Source: "pbx1", Path: "/var/lib/asterisk/sounds/custom", Generation: 3, State: "held",
				Held:     "held by operator at 3",
				Progress: &syncer.Progress{Generation: 9, Phase: "fetching", Files: 12, FilesTotal: 100, Bytes: 1 << 20, BytesTotal: 8 << 20, ETASeconds: 7.5}},
			{Name: "voicemail", Type: "files", Role: "target", Source: "pbx1", Path: "/var/spool/asterisk/voicemail", State: "waiting",
				Progress: &syncer.Progress{Phase: "fetching", Files: 40, FilesTotal: 52, Bytes: 40 << 10, BytesTotal: 52 << 10, ETASeconds: -1, Offered: true}},
			{Name: "prompts", Type: "files", Role: "target", Source: "pbx1", Path: "/var/lib/asterisk/sounds/prompts", Generation: 1, State: "applying",
				Progress: &syncer.Progress{Generation: 2, Phase: "applying", Files: 1, FilesTotal: 4, Bytes: 40, BytesTotal: 40, ETASeconds: 3}},
			{Name: "moh", Type: "files", Role: "source", Path: "/var/lib/asterisk/moh", State: "starting",
				Progress: &syncer.Progress{Phase: syncer.PhaseScanning, Files: 5000, FilesTotal: 5000, Bytes: 3 << 30, BytesTotal: 3 << 30, ETASeconds: -1}},
			{Name: "conf", Type: "files", Role: "source", Path: "/etc/asterisk", Generation: 7, State: "good", Rollout: "1/3 targets have generation 7",
				Targets: []syncer.TargetStatus{
					{Name: "pbx1", Version: 7, Generation: 7, State: "good"},
					{Name: "pbx3", Version: 6, Generation: 6, State: "down", Reason: "down since 2026-12-02T04:00:00Z", Lag: 1},
					{Name: "pbx4", Version: 6, Generation: 6, State: "applying", Lag: 1,
						Progress: &syncer.Progress{Generation: 7, Phase: "applying", Files: 3, FilesTotal: 4, Bytes: 30, BytesTotal: 40, ETASeconds: -1}},
				}},
		}}}
	s, err := Listen(Options{Addr: "127.0.0.1:0", Source: src, History: st})
	if err != nil {
		t.Fatal(err)
	}
	sctx, scancel := context.WithCancel(context.Background())
	defer scancel()
	go s.Serve(sctx)

	opts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath(chrome), chromedp.NoSandbox,
		chromedp.Flag("disable-dev-shm-usage", true), chromedp.WindowSize(1280, 1000))
	actx, acancel := chromedp.NewExecAllocator(context.Background(), opts...)
	defer acancel()
	bctx, bcancel := chromedp.NewContext(actx)
	defer bcancel()
	ctx, cancel := context.WithTimeout(bctx, testwait.Limit())
	defer cancel()
	if err := chromedp.Do(ctx, chromedp.Navigate(s.URL()+"/"), chromedp.WaitVisible(chromedp.CSS(`#job-sounds progress`)),
		chromedp.WaitVisible(chromedp.CSS(`#job-conf tr[data-target="pbx4"] progress`))); err != nil {
		t.Fatalf("browser: %v", err)
	}
	// the histories come in a request of their own
	if _, err := chromedp.Run(ctx, chromedp.Poll[bool](`document.querySelector('#job-conf').innerText.includes('No generations yet.')`,
		chromedp.WithPollingTimeout(0), chromedp.WithPollingInterval(50*time.Millisecond))); err != nil {
		t.Fatalf("browser: waiting for the history: %v", err)
	}
	text := func(sel string) string {
		t.Helper()
		s, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(sel)))
		if err != nil {
			t.Fatalf("browser: text of %s: %v", sel, err)
		}
		return s
	}
	attr := func(expr string) string {
		t.Helper()
		v, err := chromedp.Run(ctx, chromedp.Evaluate[string](expr))
		if err != nil {
			t.Fatalf("browser: %s: %v", expr, err)
		}
		return v
	}
	if v := attr(`(() => { const p = document.querySelector('#job-sounds progress'); return p.value + '/' + p.max })()`); v != "1048576/8388608" {
		t.Errorf("the held target's progress bar is %s, want 1048576/8388608 (bytes)", v)
	}
	if v := attr(`(() => { const p = document.querySelector('#job-prompts progress'); return p.value + '/' + p.max })()`); v != "1/4" {
		t.Errorf("an apply whose bytes are staged shows a bar of %s, want 1/4 (its files in place)", v)
	}
	if v := attr(`String(document.querySelector('#job-moh progress').hasAttribute('value'))`); v != "false" {
		t.Errorf("a scan with no total shows a bar with a value (has value: %s)", v)
	}
	for sel, wants := range map[string][]string{
		"#job-sounds":                      {"held by operator at 3", "fetching generation 9: 12/100 files, 1.0 MiB/8.0 MiB, about 8 s left", "Resume", "target of pbx1"},
		`#job-conf tr[data-target="pbx4"]`: {"applying", "applying generation 7: 3/4 files, 30 B/40 B"},
		"#job-voicemail":                   {"fetching what the source offers for its first generation: 40/52 files, 40.0 KiB/52.0 KiB, the source still scans and offers more"},
		"#job-moh":                         {"scanning for a new generation: 5000 files read and stored, 3.0 GiB so far"},
		`#job-conf tr[data-target="pbx3"]`: {"down", "down since 2026-12-02T04:00:00Z"},
		"#job-conf":                        {"1/3 targets have generation 7", "No generations yet."},
		`#farm tr[data-peer="pbx3"]`:       {"down", "timeout: no recent network activity"},
		`#farm tr[data-peer="pbx1"]`:       {"up", "1.3 ms"},
		"#errors":                          {"peer pbx3", "timeout: no recent network activity"},
	} {
		got := text(sel)
		for _, want := range wants {
			if !strings.Contains(got, want) {
				t.Errorf("%s lacks %q:\n%s", sel, want, got)
			}
		}
	}
	if strings.Contains(text(`#job-conf tr[data-target="pbx4"]`), "left") {
		t.Error("a progress without an estimate (eta -1) shows a time left")
	}
	if d := attr(`String(document.querySelector('#job-sounds button[data-action="resume"]').disabled)`); d != "true" {
		t.Errorf("Resume is enabled without a token (disabled = %s)", d)
	}
}
