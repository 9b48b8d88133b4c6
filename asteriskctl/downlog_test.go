package asteriskctl

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"pbxsync/internal/amisim"
	"pbxsync/internal/testwait"
)

// TestDownLogsOncePerStateChange: while Asterisk is down and a health
// probe asks for AMI every 20 ms, the session logs one warning for the
// outage (not one per attempt, which the probes make far more often than
// the backoff it would log), then "session up" with the attempts count.
func TestDownLogsOncePerStateChange(t *testing.T) {
	sim := startSim(t, amisim.Config{})
	cfg, logs := testConfig(t, sim, testSecret)
	cfg.MinBackoff, cfg.MaxBackoff = 10*time.Millisecond, 2*time.Second
	if err := sim.Down(); err != nil {
		t.Fatal(err)
	}
	s := openSession(t, cfg)
	// Probe until the session has made at least 10 attempts (counted, not
	// timed: a loaded machine makes fewer per second).
	probes := 0
	attempts := func() int {
		text := logs.String()
		return strings.Count(text, `msg="AMI connect failed"`) + strings.Count(text, "level=WARN")
	}
	testwait.Eventually(t, "10 connect attempts", func() error {
		if n := attempts(); n < 10 {
			ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
			_, _ = s.Ping(ctx)
			cancel()
			probes++
			time.Sleep(20 * time.Millisecond)
			return fmt.Errorf("%d attempts after %d probes", n, probes)
		}
		return nil
	})
	text := logs.String()
	warns := strings.Count(text, "level=WARN")
	if warns != 1 {
		t.Fatalf("%d warnings for one outage (%d attempts), want 1\n%s", warns, attempts(), text)
	}
	if !strings.Contains(text, "next_attempt_in=") || !strings.Contains(text, "sooner when an action needs AMI") {
		t.Errorf("the warning does not say when the next attempt is\n%s", text)
	}
	if err := sim.Up(); err != nil {
		t.Fatal(err)
	}
	if err := s.WaitConnected(testwait.Context(t)); err != nil {
		t.Fatal(err)
	}
	eventually(t, "session up logged", func() bool { return strings.Contains(logs.String(), "after_failed_attempts=") })
}

// TestDownLogSummary: the same error for longer than downSummaryEvery
// gives one summary with the number of attempts; a new error is logged at
// once.
func TestDownLogSummary(t *testing.T) {
	logs := &syncBuffer{}
	log := slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	var d downLog
	t0 := time.Unix(1000, 0)
	refused := errString("dial tcp 127.0.0.1:5038: connect: connection refused")
	d.failed(log, refused, 200*time.Millisecond, t0)
	for i := 1; i <= 130; i++ {
		d.failed(log, refused, 17*time.Second, t0.Add(time.Duration(i)*500*time.Millisecond))
	}
	d.failed(log, errString("AMI login failed for user \"x\": Authentication failed"), 30*time.Second, t0.Add(66*time.Second))
	text := logs.String()
	if n := strings.Count(text, "level=WARN"); n != 3 {
		t.Fatalf("%d warnings, want 3 (first failure, summary after 1 min, new error)\n%s", n, text)
	}
	if !strings.Contains(text, "AMI still unreachable") || !strings.Contains(text, "attempts=121 attempts_since_last_summary=120") {
		t.Errorf("no summary with the attempt counts\n%s", text)
	}
	if !strings.Contains(text, "with a new error") {
		t.Errorf("the new error was not logged\n%s", text)
	}
}

type errString string

func (e errString) Error() string { return string(e) }
