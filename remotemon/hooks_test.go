package remotemon

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"pbxsync/internal/testwait"
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
	// pbx2's down grace is longer than any flap below can last, however
	// loaded the machine: a flap of pbx2 must run no down hook.
	h := NewHookRunner([]Hook{
		{Peer: "pbx1", Up: false, Grace: 50 * time.Millisecond, Command: cmd, Timeout: testwait.Limit()},
		{Peer: "pbx1", Up: true, Grace: 0, Command: cmd, Timeout: testwait.Limit()},
		{Peer: "pbx2", Up: false, Grace: testwait.Limit(), Command: cmd, Timeout: testwait.Limit()},
		{Peer: "pbx2", Up: true, Grace: 0, Command: cmd, Timeout: testwait.Limit()},
	}, slog.New(slog.DiscardHandler))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	h.PeerChanged("pbx1", true) // up before start: no down at start
	h.PeerChanged("pbx2", true)
	h.Start(ctx)
	ran := func(want ...string) {
		t.Helper()
		testwait.Eventually(t, strings.Join(want, "|"), func() error {
			if got := strings.Split(strings.TrimSpace(readLog(t, out)), "\n"); strings.Join(got, "|") != strings.Join(want, "|") {
				return fmt.Errorf("hook runs %q", got)
			}
			return nil
		})
	}
	time.Sleep(150 * time.Millisecond) // three graces: no down hook at start
	h.PeerChanged("pbx1", false)
	h.PeerChanged("pbx1", false) // repeated: no second transition
	ran("down pbx1")
	h.PeerChanged("pbx1", true)
	ran("down pbx1", "up pbx1")
	// A flap shorter than the grace period runs no down hook; the peer is
	// up again, so its up hook runs.
	h.PeerChanged("pbx2", false)
	h.PeerChanged("pbx2", true)
	ran("down pbx1", "up pbx1", "up pbx2")
	cancel()
	h.Wait()
	ran("down pbx1", "up pbx1", "up pbx2")
}

func TestHookRunnerDownAtStart(t *testing.T) {
	out := filepath.Join(t.TempDir(), "events")
	h := NewHookRunner([]Hook{{Peer: "primary", Grace: 20 * time.Millisecond, Command: "echo down >> " + out, Timeout: testwait.Limit()}}, slog.New(slog.DiscardHandler))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	h.Start(ctx)
	testwait.Eventually(t, "the down hook at start", func() error {
		if readLog(t, out) == "" {
			return fmt.Errorf("no hook ran")
		}
		return nil
	})
	time.Sleep(100 * time.Millisecond) // five graces: no second run
	h.Wait()
	if got := readLog(t, out); got != "down\n" {
		t.Fatalf("a peer never seen up must count as down once at start; got %q", got)
	}
}
