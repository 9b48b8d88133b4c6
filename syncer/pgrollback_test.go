package syncer

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"pbxsync/hostmon"
	"pbxsync/internal/identity"
	"pbxsync/internal/store"
)

// pgSettled waits until the source has recorded every change and the
// target is good at it, and returns the source's generation.
func pgSettled(t *testing.T, a, b *pgNode) uint64 {
	t.Helper()
	var g uint64
	eventually(t, waitLimit, "target good at the source's generation", func() error {
		sa := a.status()
		if len(sa.Targets) != 1 || sa.Targets[0].State != "good" || sa.Targets[0].Generation == 0 {
			return fmt.Errorf("targets %+v", sa.Targets)
		}
		if sb := b.status(); sb.State != "good" {
			return fmt.Errorf("target state %s: %s", sb.State, sb.LastError)
		}
		g = sa.Generation
		return nil
	})
	return g
}

// TestPGRollback: rolling a postgres job back to generation N makes the
// source's rows and every target's those of N, as one new generation (one
// transaction per node); a push target refuses and names the source.
func TestPGRollback(t *testing.T) {
	t.Parallel()
	a, b, ca, cb := pgEndpointsPair(t, `INSERT INTO ps_endpoints VALUES ('100','udp','100','100','from-internal','all','ulaw','no')`)
	a.start()
	b.start()
	pgSame(t, "initial sync", ca, cb)
	pgExec(t, ca, `INSERT INTO ps_endpoints SELECT 'ep'||g, 'udp', 'ep'||g, 'ep'||g, 'from-internal', 'all', 'ulaw', NULL FROM generate_series(1,50) g`)
	pgSame(t, "insert", ca, cb)
	pgSettled(t, a, b)
	n := a.status().Generation
	atN := pgDump(t, ca)

	// what generation N must undo: an update, a delete, an insert, a key change
	pgExec(t, ca, `UPDATE ps_endpoints SET context = 'from-sales', direct_media = 'yes' WHERE id IN ('ep1', 'ep2')`)
	pgSame(t, "update", ca, cb)
	pgExec(t, ca, `DELETE FROM ps_endpoints WHERE id = 'ep5'`)
	pgExec(t, ca, `INSERT INTO ps_endpoints VALUES ('new1','tls','a','b','c','d','e','f')`)
	pgSame(t, "delete and insert", ca, cb)
	pgExec(t, ca, `UPDATE ps_endpoints SET id = 'ep1000' WHERE id = 'ep7'`)
	pgSame(t, "key update", ca, cb)
	newest := pgSettled(t, a, b)
	if newest <= n {
		t.Fatalf("source generation %d after the changes; was %d", newest, n)
	}
	bGens, _ := b.agent.Store().Generations("realtime")

	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	defer cancel()
	if _, err := b.agent.Rollback(ctx, "realtime", 0, false); !errors.Is(err, ErrTargetRollback) || !strings.Contains(err.Error(), "run `pbxsync rollback` on a") {
		t.Fatalf("rollback on the target: %v", err)
	}
	gen, err := a.agent.Rollback(ctx, "realtime", n, false)
	if err != nil {
		t.Fatalf("rollback to %d: %v", n, err)
	}
	if gen <= newest {
		t.Fatalf("rollback gave generation %d; the newest was %d", gen, newest)
	}
	if got := pgDump(t, ca); got != atN {
		t.Fatalf("source rows after the rollback are not generation %d's: %s", n, firstDiff(got, atN))
	}
	pgSame(t, "rollback reaches the target", ca, cb)
	pgSettled(t, a, b)
	g, err := a.agent.Store().Generation("realtime", gen)
	if err != nil || g.Reason != fmt.Sprintf("rollback to generation %d", n) {
		t.Fatalf("generation %d: %v %+v", gen, err, g)
	}
	if gi, _ := a.agent.Store().GenerationInfo("realtime", newest); gi.State != store.StateRolledBack {
		t.Errorf("generation %d replaced by the rollback is %s", newest, gi.State)
	}
	bAfter, _ := b.agent.Store().Generations("realtime")
	if len(bAfter) != len(bGens)+1 {
		t.Errorf("the target recorded %d generations for the rollback; want one (one transaction)", len(bAfter)-len(bGens))
	}

	// a plain rollback goes to the good generation before the newest:
	// the one before the rollback, whose rows come back
	pgExec(t, ca, `UPDATE ps_endpoints SET allow = 'g722' WHERE id = '100'`)
	pgSame(t, "a change after the rollback", ca, cb)
	afterChange := pgDump(t, ca)
	latest := pgSettled(t, a, b)
	pgExec(t, ca, `DELETE FROM ps_endpoints WHERE id LIKE 'ep1%'`)
	pgSame(t, "a bad change", ca, cb)
	eventually(t, waitLimit, "the bad change recorded", func() error {
		if g := a.status().Generation; g == latest {
			return fmt.Errorf("generation %d", g)
		}
		return nil
	})
	pgSettled(t, a, b)
	if _, err := a.agent.Rollback(ctx, "realtime", 0, false); err != nil {
		t.Fatal(err)
	}
	if got := pgDump(t, ca); got != afterChange {
		t.Fatalf("rollback to the previous generation: %s", firstDiff(got, afterChange))
	}
	pgSame(t, "the second rollback reaches the target", ca, cb)
}

// TestPGBackupRestore: a backup of generation N of a postgres job holds
// its rows; restoring it on the source makes the source's and the
// target's rows those of N; a damaged archive changes nothing.
func TestPGBackupRestore(t *testing.T) {
	t.Parallel()
	a, b, ca, cb := pgEndpointsPair(t, `INSERT INTO ps_endpoints SELECT 'ep'||g, 'udp', 'ep'||g, 'ep'||g, 'from-internal', 'all', 'ulaw', NULL FROM generate_series(1,20) g`)
	a.start()
	b.start()
	pgSame(t, "initial sync", ca, cb)
	pgExec(t, ca, `UPDATE ps_endpoints SET allow = 'alaw' WHERE id = 'ep3'`)
	pgSame(t, "update", ca, cb)
	n := pgSettled(t, a, b)
	atN := pgDump(t, ca)
	out := filepath.Join(t.TempDir(), "realtime.tar.zst")
	cfg, _ := a.agent.cfgSnapshot().JobByName("realtime")
	if _, err := WriteBackup(context.Background(), a.agent.Store(), *cfg, "a", n, out, nil); err != nil {
		t.Fatalf("backup: %v", err)
	}
	// the rows straight from the database (a backup of the newest
	// generation once keep trimmed its chain) are the same rows
	live, err := PGLiveRows(*cfg)(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	fromStore, err := PGRowsAt(context.Background(), a.agent.Store(), "realtime", n)
	if err != nil {
		t.Fatal(err)
	}
	if d, err := hostmon.Diff(live.Schema, live, fromStore); err != nil || d.Rows() != 0 || len(live.Tables["ps_endpoints"].Upserts) != 20 {
		t.Fatalf("rows from the database and from the store differ: %v, %d rows", err, d.Rows())
	}
	pgExec(t, ca, `DELETE FROM ps_endpoints WHERE id IN ('ep1', 'ep2')`)
	pgExec(t, ca, `UPDATE ps_endpoints SET context = 'x'`)
	pgSame(t, "changes after the backup", ca, cb)

	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	defer cancel()
	raw, _ := os.ReadFile(out)
	raw[len(raw)/2] ^= 0xff
	bad := filepath.Join(t.TempDir(), "bad.tar.zst")
	os.WriteFile(bad, raw, 0o600)
	before := pgDump(t, ca)
	if _, err := restoreFile(ctx, a.agent, "realtime", bad); err == nil {
		t.Fatal("a damaged archive was restored")
	}
	if pgDump(t, ca) != before {
		t.Fatal("a refused restore changed the rows")
	}
	if _, err := restoreFile(ctx, a.agent, "realtime", out); err != nil {
		t.Fatalf("restore: %v", err)
	}
	if got := pgDump(t, ca); got != atN {
		t.Fatalf("source rows after restore: %s", firstDiff(got, atN))
	}
	pgSame(t, "the restore reaches the target", ca, cb)
}

// TestPGReinstalledTarget: a target reinstalled from scratch (its tables
// empty, its data_dir empty, so a new node key the source is given by a
// reload) gets every row from the source without anyone acting on it.
func TestPGReinstalledTarget(t *testing.T) {
	t.Parallel()
	a, b, ca, cb := pgEndpointsPair(t, `INSERT INTO ps_endpoints SELECT 'ep'||g, 'udp', 'ep'||g, 'ep'||g, 'from-internal', 'all', 'ulaw', NULL FROM generate_series(1,200) g`)
	a.start()
	b.start()
	pgSame(t, "initial sync", ca, cb)
	pgExec(t, ca, `UPDATE ps_endpoints SET allow = 'alaw' WHERE id = 'ep3'`)
	pgSame(t, "update", ca, cb)
	pgSettled(t, a, b)

	b.stop()
	// the reinstall: a fresh database with the schema and no rows, no
	// pbxsync objects, and an empty data_dir
	pgExec(t, cb, `DROP SCHEMA pbxsync CASCADE`)
	pgExec(t, cb, `TRUNCATE ps_endpoints`)
	if err := os.RemoveAll(filepath.Join(b.dir, "data")); err != nil {
		t.Fatal(err)
	}
	id, err := identity.LoadOrCreate(filepath.Join(b.dir, "data"))
	if err != nil {
		t.Fatal(err)
	}
	oldID := b.id.ID.String()
	b.id = id
	a.config = strings.Replace(a.config, oldID, id.ID.String(), 1)
	a.stop() // the admin pins the new key on the source and restarts it
	a.start()
	b.start()
	pgExec(t, ca, `UPDATE ps_endpoints SET allow = 'g722' WHERE id = 'ep4'`)
	pgSame(t, "the reinstalled target", ca, cb)
}

// TestPGRollbackAfterKeepTrims: once keep has trimmed the job's first
// snapshot, a rollback still reaches the kept generations (from the
// source's checkpoints), and one to a trimmed generation is refused with
// nothing changed.
func TestPGRollbackAfterKeepTrims(t *testing.T) {
	t.Parallel()
	a, b, ca, cb := pgEndpointsPair(t, `INSERT INTO ps_endpoints VALUES ('100','udp','100','100','from-internal','all','ulaw','no')`)
	a.config += "keep = 4\n"
	b.config += "keep = 4\n"
	a.start()
	b.start()
	pgSame(t, "initial sync", ca, cb)
	dumps := map[uint64]string{}
	for i := range 9 {
		before := a.status().Generation
		pgExec(t, ca, fmt.Sprintf(`INSERT INTO ps_endpoints VALUES ('ep%d','udp','x','x','c%d','all','ulaw','no')`, i, i))
		eventually(t, waitLimit, "a new generation", func() error {
			if g := a.status().Generation; g == before {
				return fmt.Errorf("still %d", g)
			}
			return nil
		})
		dumps[a.status().Generation] = pgDump(t, ca)
	}
	pgSame(t, "the changes", ca, cb)
	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	defer cancel()
	if err := a.agent.Store().GC(ctx, map[string]int{"realtime": 4}); err != nil {
		t.Fatal(err)
	}
	infos, _ := a.agent.Store().Generations("realtime")
	if len(infos) > 4 || infos[0].Number == 1 {
		t.Fatalf("GC kept %d generations from %d", len(infos), infos[0].Number)
	}
	oldest := infos[0].Number
	before := pgDump(t, ca)
	if _, err := a.agent.Rollback(ctx, "realtime", 1, false); err == nil || !strings.Contains(err.Error(), "no longer kept") {
		t.Fatalf("rollback to a trimmed generation: %v", err)
	}
	if pgDump(t, ca) != before {
		t.Fatal("a refused rollback changed the rows")
	}
	to := oldest + oldest%2 // a generation with a checkpoint, or the one after it
	if to == oldest {
		to++ // and one that starts from it
	}
	if _, err := a.agent.Rollback(ctx, "realtime", to, false); err != nil {
		t.Fatalf("rollback to kept generation %d (kept from %d): %v", to, oldest, err)
	}
	if got := pgDump(t, ca); got != dumps[to] {
		t.Fatalf("rows after the rollback to %d: %s", to, firstDiff(got, dumps[to]))
	}
	pgSame(t, "the rollback reaches the target", ca, cb)
}
