package syncer

import (
	"context"
	"fmt"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"

	"pbxsync/internal/config"
)

// startClocked is pgNode.start with the agent's clock set.
func (n *pgNode) startClocked(clock *fakeClock) {
	n.tb.Helper()
	cfg, err := config.Parse(filepath.Join(n.dir, "pbxsync.toml"), []byte(n.config))
	if err != nil {
		n.tb.Fatalf("config of %s: %v", n.name, err)
	}
	log := slog.New(slog.NewTextHandler(n.log, &slog.HandlerOptions{Level: slog.LevelDebug})).With("node", n.name)
	a, err := New(Options{Config: cfg, Identity: n.id, Log: log, Version: "test", AfterApply: n.checks, Clock: clock.now})
	if err != nil {
		n.tb.Fatalf("start %s: %v", n.name, err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	n.agent, n.cancel, n.done = a, cancel, done
}

// TestPGSyncWindow: a postgres job with a window records row changes at
// once and sends them only inside the window (the InfiniTalk seed's
// nightly database sync); sync --now sends at once.
func TestPGSyncWindow(t *testing.T) {
	t.Parallel()
	a, b, ca, cb := pgEndpointsPair(t, `INSERT INTO ps_endpoints VALUES ('100','udp','100','100','from-internal','all','ulaw','no')`)
	a.config += "window = \"02:00-04:00\"\n"
	b.config += "window = \"02:00-04:00\"\n"
	clock := &fakeClock{}
	clock.set(10, 0)
	a.startClocked(clock)
	b.start()
	pgExec(t, ca, `INSERT INTO ps_endpoints VALUES ('1001','udp','1001','1001','from-internal','all','ulaw','no')`)
	eventually(t, waitLimit, "a waits for the window", func() error {
		if w := a.status().Window; !strings.HasPrefix(w, "waiting for window 02:00, ") {
			return fmt.Errorf("window status %q", w)
		}
		return nil
	})
	if got := pgDump(t, cb); got != "" {
		t.Fatalf("b has rows outside the window: %q", got)
	}
	clock.set(2, 0)
	pgSame(t, "inside the window", ca, cb)

	clock.set(4, 0) // the end is not inside
	eventually(t, waitLimit, "b holds a's newest", func() error {
		if w := a.status().Window; w != "" {
			return fmt.Errorf("window status %q", w)
		}
		return nil
	})
	pgExec(t, ca, `UPDATE ps_endpoints SET context='from-sales' WHERE id='1001'`)
	eventually(t, waitLimit, "a waits again", func() error {
		if w := a.status().Window; w != "waiting for window 02:00, 1 generation pending" {
			return fmt.Errorf("window status %q", w)
		}
		return nil
	})
	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	defer cancel()
	if err := a.agent.SyncNow(ctx, "realtime"); err != nil {
		t.Fatal(err)
	}
	pgSame(t, "sync --now", ca, cb)
}
