package remotemon

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func readLog(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	return string(b)
}

func TestHookRunnerOncePerTransition(t *testing.T) {
	out := filepath.Join(t.TempDir(), "events")
	cmd := `echo "$PBXSYNC_EVENT $PBXSYNC_PEER" >> ` + out
	h := NewHookRunner([]Hook{
		{Peer: "pbx1", Up: false, Grace: 50 * time.Millisecond, Command: cmd, Timeout: time.Second},
		{Peer: "pbx1", Up: true, Grace: 0, Command: cmd, Timeout: time.Second},
	}, slog.New(slog.DiscardHandler))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	h.PeerChanged("pbx1", true) // up before start: no down at start
	h.Start(ctx)
	time.Sleep(150 * time.Millisecond)
	h.PeerChanged("pbx1", false)
	h.PeerChanged("pbx1", false) // repeated: no second transition
	time.Sleep(200 * time.Millisecond)
	h.PeerChanged("pbx1", true)
	time.Sleep(100 * time.Millisecond)
	// a flap shorter than the grace period runs no down hook, but its up is not a transition either
	h.PeerChanged("pbx1", false)
	time.Sleep(10 * time.Millisecond)
	h.PeerChanged("pbx1", true)
	time.Sleep(200 * time.Millisecond)
	h.Wait()
	lines := strings.Split(strings.TrimSpace(readLog(t, out)), "\n")
	if strings.Join(lines, "|") != "down pbx1|up pbx1|up pbx1" {
		t.Fatalf("hook runs: %q", lines)
	}
}

func TestHookRunnerDownAtStart(t *testing.T) {
	out := filepath.Join(t.TempDir(), "events")
	h := NewHookRunner([]Hook{{Peer: "primary", Grace: 20 * time.Millisecond, Command: "echo down >> " + out, Timeout: time.Second}}, slog.New(slog.DiscardHandler))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	h.Start(ctx)
	deadline := time.Now().Add(3 * time.Second)
	for readLog(t, out) == "" && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	time.Sleep(100 * time.Millisecond)
	h.Wait()
	if got := readLog(t, out); got != "down\n" {
		t.Fatalf("a peer never seen up must count as down once at start; got %q", got)
	}
}
