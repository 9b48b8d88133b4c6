package syncer

import (
	"context"
	"strings"
	"testing"

	"pbxsync/internal/pgtest"
)

// TestE2ESyncNow: with a watcher that waits 10 s before it reports, a
// change on the source is a generation as soon as SyncNow returns (it
// rescanned and recorded it in the job's loop) and reaches the target; on
// the target SyncNow restores a local edit at once.
func TestE2ESyncNow(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	a, b := h.pair(`debounce = "10s"`)
	a.write("x.conf", "v1\n", 0o644)
	a.start()
	b.start()
	converged(t, "initial sync", a, b)
	before, _ := a.jobStatus("conf")

	a.write("x.conf", "v2\n", 0o644)
	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	defer cancel()
	if err := a.a().SyncNow(ctx, "conf"); err != nil {
		t.Fatalf("SyncNow on the source: %v", err)
	}
	if after, _ := a.jobStatus("conf"); after.Generation != before.Generation+1 {
		t.Fatalf("after SyncNow the source is at generation %d, want %d (the change recorded at once)", after.Generation, before.Generation+1)
	}
	converged(t, "v2 after sync now", a, b)

	b.write("x.conf", "local edit\n", 0o644)
	if err := b.a().SyncNow(ctx, "conf"); err != nil {
		t.Fatalf("SyncNow on the target: %v", err)
	}
	if got := string(b.read("x.conf")); got != "v2\n" {
		t.Fatalf("after SyncNow on the target x.conf holds %q, want the source's v2", got)
	}
	if err := a.a().SyncNow(ctx, "nope"); err == nil {
		t.Fatal("SyncNow of an unknown job: no error")
	}
}

// TestPGSyncNow: on a postgres source SyncNow collects the captured rows
// now (a generation is recorded when it returns) and they reach the
// target; on a postgres target it is refused and names the source.
func TestPGSyncNow(t *testing.T) {
	t.Parallel()
	srv := pgtest.Start(t)
	dsnA, dsnB := srv.NewDB(t), srv.NewDB(t)
	ca, cb := pgtest.Connect(t, dsnA), pgtest.Connect(t, dsnB)
	pgExec(t, ca, pgEndpointsDDL)
	pgExec(t, cb, pgEndpointsDDL)
	a, b := pgPair(t, dsnA, dsnB)
	a.start()
	b.start()
	pgExec(t, ca, `INSERT INTO ps_endpoints VALUES ('100','udp','100','100','from-internal','all','ulaw','no')`)
	pgSame(t, "initial sync", ca, cb)
	before := a.status().Generation
	pgExec(t, ca, `INSERT INTO ps_endpoints VALUES ('101','udp','101','101','from-internal','all','ulaw','no')`)
	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	defer cancel()
	if err := a.agent.SyncNow(ctx, "realtime"); err != nil {
		t.Fatalf("SyncNow on the postgres source: %v", err)
	}
	if after := a.status().Generation; after != before+1 {
		t.Errorf("after SyncNow the source is at generation %d, want %d", after, before+1)
	}
	pgSame(t, "the row after sync now", ca, cb)
	if err := b.agent.SyncNow(ctx, "realtime"); err == nil || !strings.Contains(err.Error(), "run it on the source a") {
		t.Errorf("SyncNow on the postgres target: %v, want a refusal naming the source", err)
	}
}
