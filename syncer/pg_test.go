package syncer

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"pbxsync/internal/config"
	"pbxsync/internal/identity"
	"pbxsync/internal/pgtest"
	"pbxsync/internal/testlog"
)

const pgEndpointsDDL = `CREATE TABLE ps_endpoints (id varchar(40) PRIMARY KEY, transport varchar(40), aors varchar(200), auth varchar(40), context varchar(40), disallow varchar(200), allow varchar(200), direct_media text)`

// pgChecks is an AfterApply that fails while fail is set.
type pgChecks struct{ fail atomic.Bool }

func (c *pgChecks) AfterApply(ctx context.Context, job *config.Job, gen uint64, changed []string) error {
	if c.fail.Load() {
		return errors.New("check sorcery flush failed (test)")
	}
	return nil
}

// pgNode is one agent of a postgres test.
type pgNode struct {
	tb     testing.TB
	name   string
	dir    string
	port   int
	id     *identity.Identity
	config string
	checks *pgChecks
	log    *logBuffer
	tune   func(*Options) // changes the agent's options before start (may be nil)

	agent  *Agent
	cancel context.CancelFunc
	done   chan error
}

func newPGNode(tb testing.TB, name string) *pgNode {
	tb.Helper()
	n := &pgNode{tb: tb, name: name, dir: filepath.Join(tb.TempDir(), name), checks: &pgChecks{}, log: &logBuffer{}}
	id, err := identity.LoadOrCreate(filepath.Join(n.dir, "data"))
	if err != nil {
		tb.Fatal(err)
	}
	n.id = id
	n.port = freeUDPPort(tb)
	tb.Cleanup(func() {
		n.stop()
		switch {
		case os.Getenv("PG_TEST_LOG") != "":
			tb.Logf("===== log of %s =====\n%s", n.name, n.log.String())
		case tb.Failed():
			testlog.Dump(tb, n.name, n.log.String())
		}
	})
	return n
}

// pgPair makes source a and target b of job "realtime" over dsnA and dsnB.
// pgEndpointsPair starts a PostgreSQL server with two databases holding
// ps_endpoints, runs seed on the source's, and returns the push pair a → b
// of job "realtime" over them (not started) and a connection to each.
func pgEndpointsPair(t *testing.T, seed string) (a, b *pgNode, ca, cb *pgx.Conn) {
	t.Helper()
	srv := pgtest.Start(t)
	dsnA, dsnB := srv.NewDB(t), srv.NewDB(t)
	ca, cb = pgtest.Connect(t, dsnA), pgtest.Connect(t, dsnB)
	pgExec(t, ca, pgEndpointsDDL)
	pgExec(t, cb, pgEndpointsDDL)
	pgExec(t, ca, seed)
	a, b = pgPair(t, dsnA, dsnB)
	return a, b, ca, cb
}

func pgPair(tb testing.TB, dsnA, dsnB string) (a, b *pgNode) {
	a, b = newPGNode(tb, "a"), newPGNode(tb, "b")
	for _, x := range []struct {
		n, peer *pgNode
		dsn     string
	}{{a, b, dsnA}, {b, a, dsnB}} {
		x.n.config = fmt.Sprintf("[node]\nname = %q\nlisten = \"127.0.0.1:%d\"\ndata_dir = %q\n\n[[peer]]\nname = %q\naddress = \"127.0.0.1:%d\"\nid = %q\n\n"+
			"[[job]]\nname = \"realtime\"\ntype = \"postgres\"\ndsn = %q\ntables = [\"ps_endpoints\"]\nmode = \"push\"\nsource = \"a\"\ntargets = [\"b\"]\n",
			x.n.name, x.n.port, filepath.Join(x.n.dir, "data"), x.peer.name, x.peer.port, x.peer.id.ID.String(), x.dsn)
	}
	return a, b
}

func (n *pgNode) start() {
	n.tb.Helper()
	cfg, err := config.Parse(filepath.Join(n.dir, "pbxsync.toml"), []byte(n.config))
	if err != nil {
		n.tb.Fatalf("config of %s: %v", n.name, err)
	}
	log := slog.New(slog.NewTextHandler(n.log, &slog.HandlerOptions{Level: slog.LevelDebug})).With("node", n.name)
	opts := Options{Config: cfg, Identity: n.id, Log: log, Version: "test", AfterApply: n.checks}
	if n.tune != nil {
		n.tune(&opts)
	}
	a, err := New(opts)
	if err != nil {
		n.tb.Fatalf("start %s: %v", n.name, err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	n.agent, n.cancel, n.done = a, cancel, done
}

func (n *pgNode) stop() {
	if n.agent == nil {
		return
	}
	n.cancel()
	select {
	case <-n.done:
	case <-time.After(waitLimit):
		n.tb.Errorf("%s did not stop", n.name)
	}
	n.agent = nil
}

func (n *pgNode) status() JobStatus {
	for _, j := range n.agent.Status().Jobs {
		if j.Name == "realtime" {
			return j
		}
	}
	return JobStatus{}
}

func pgExec(tb testing.TB, c *pgx.Conn, sql string, args ...any) {
	tb.Helper()
	if _, err := c.Exec(context.Background(), sql, args...); err != nil {
		tb.Fatalf("%s: %v", sql, err)
	}
}

// pgDump is the ordered dump of ps_endpoints, like psql -At would print.
func pgDump(tb testing.TB, c *pgx.Conn) string {
	tb.Helper()
	rows, err := c.Query(context.Background(), "SELECT t::text FROM ps_endpoints t ORDER BY id")
	if err != nil {
		tb.Fatal(err)
	}
	s, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		tb.Fatal(err)
	}
	return strings.Join(s, "\n")
}

func pgSame(tb testing.TB, what string, a, b *pgx.Conn) {
	tb.Helper()
	eventually(tb, waitLimit, what, func() error {
		da, db := pgDump(tb, a), pgDump(tb, b)
		if da != db {
			return fmt.Errorf("source has %d rows, target %d; first difference near %q", strings.Count(da, "\n")+1, strings.Count(db, "\n")+1, firstDiff(da, db))
		}
		return nil
	})
}

func firstDiff(a, b string) string {
	la, lb := strings.Split(a, "\n"), strings.Split(b, "\n")
	for i := range min(len(la), len(lb)) {
		if la[i] != lb[i] {
			return la[i] + " / " + lb[i]
		}
	}
	return fmt.Sprintf("(lengths %d, %d)", len(la), len(lb))
}

func TestPGPush(t *testing.T) {
	t.Parallel()
	srv := pgtest.Start(t)
	dsnA, dsnB := srv.NewDB(t), srv.NewDB(t)
	ca, cb := pgtest.Connect(t, dsnA), pgtest.Connect(t, dsnB)
	pgExec(t, ca, pgEndpointsDDL)
	pgExec(t, cb, pgEndpointsDDL)
	// before the agents run: the source has a row, the target something else
	pgExec(t, ca, `INSERT INTO ps_endpoints VALUES ('100','udp','100','100','from-internal','all','ulaw','no')`)
	pgExec(t, cb, `INSERT INTO ps_endpoints VALUES ('stale','udp','','','','','','')`)
	a, b := pgPair(t, dsnA, dsnB)
	a.start()
	b.start()
	pgSame(t, "initial sync", ca, cb)

	pgExec(t, ca, `INSERT INTO ps_endpoints VALUES ('1001','udp','1001','1001','from-internal','all','ulaw,alaw','no')`)
	pgSame(t, "insert", ca, cb)
	pgExec(t, ca, `UPDATE ps_endpoints SET context='from-sales' WHERE id='1001'`)
	pgSame(t, "update", ca, cb)
	pgExec(t, ca, `UPDATE ps_endpoints SET id='2001' WHERE id='1001'`)
	pgSame(t, "key update", ca, cb)
	pgExec(t, ca, `DELETE FROM ps_endpoints WHERE id='2001'`)
	pgSame(t, "delete", ca, cb)
	pgExec(t, ca, `INSERT INTO ps_endpoints SELECT 'ep'||g, 'udp', 'ep'||g, 'ep'||g, 'from-internal', 'all', 'ulaw', NULL FROM generate_series(1,10000) g`)
	pgSame(t, "10,000-row bulk insert", ca, cb)

	t.Run("restart and dropped connections during a burst", func(t *testing.T) {
		// The burst runs on its own connection (a pgx.Conn serves one
		// goroutine) and reports its first error instead of failing the
		// test from a goroutine; the test's own statements use ca.
		cburst := pgtest.Connect(t, dsnA)
		burst := func(from, to int) error {
			for i := from; i < to; i++ {
				var sql string
				var args []any
				switch i % 4 {
				case 0, 1:
					sql, args = `INSERT INTO ps_endpoints VALUES ($1,'udp','x','x','burst','all','ulaw','no') ON CONFLICT (id) DO UPDATE SET context = 'burst-again'`, []any{fmt.Sprintf("b%d", i)}
				case 2:
					sql, args = `UPDATE ps_endpoints SET context = $1 WHERE id = $2`, []any{fmt.Sprintf("c%d", i), fmt.Sprintf("ep%d", i)}
				case 3:
					sql, args = `DELETE FROM ps_endpoints WHERE id = $1`, []any{fmt.Sprintf("ep%d", i-1)}
				}
				if _, err := cburst.Exec(context.Background(), sql, args...); err != nil {
					return fmt.Errorf("burst statement %d: %s: %w", i, sql, err)
				}
			}
			return nil
		}
		done := make(chan error, 1)
		go func() { done <- burst(0, 600) }()
		time.Sleep(100 * time.Millisecond)
		a.stop() // the source goes down mid-burst: the change log keeps it all
		time.Sleep(200 * time.Millisecond)
		a.start()
		time.Sleep(200 * time.Millisecond)
		b.stop() // so does the target: the QUIC connection drops
		time.Sleep(200 * time.Millisecond)
		b.start()
		// and every database connection of the agents is cut (not the
		// test's own: this one and the burst's)
		keep := cburst.PgConn().PID()
		for _, c := range []*pgx.Conn{ca, cb} {
			pgExec(t, c, `SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid() AND pid <> $1`, keep)
		}
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		if err := burst(600, 1200); err != nil {
			t.Fatal(err)
		}
		pgSame(t, "after the burst", ca, cb)
	})

	t.Run("a failing check restores the previous rows exactly", func(t *testing.T) {
		before := pgDump(t, cb)
		prevGen := b.status().Generation
		b.checks.fail.Store(true)
		pgExec(t, ca, `UPDATE ps_endpoints SET allow = 'g729', direct_media = NULL WHERE id IN ('ep1', 'ep2')`)
		pgExec(t, ca, `DELETE FROM ps_endpoints WHERE id = 'ep5'`)
		pgExec(t, ca, `INSERT INTO ps_endpoints VALUES ('new1','tls','a','b','c','d','e','f')`)
		eventually(t, waitLimit, "target marks the generation bad", func() error {
			if st := b.status(); st.State != "bad" || !strings.Contains(st.LastError, "sorcery flush failed") {
				return fmt.Errorf("state %s: %s", st.State, st.LastError)
			}
			return nil
		})
		if got := pgDump(t, cb); got != before {
			t.Fatalf("the previous rows were not restored: %s", firstDiff(got, before))
		}
		if g := b.status().Generation; g != prevGen {
			t.Errorf("target reports generation %d, want the previous good one %d", g, prevGen)
		}
		b.checks.fail.Store(false)
		pgExec(t, ca, `UPDATE ps_endpoints SET context = 'fixed' WHERE id = 'ep3'`)
		pgSame(t, "next change after the bad one", ca, cb)
	})
}

func TestPGSchemaMismatch(t *testing.T) {
	t.Parallel()
	srv := pgtest.Start(t)
	dsnA, dsnB := srv.NewDB(t), srv.NewDB(t)
	ca, cb := pgtest.Connect(t, dsnA), pgtest.Connect(t, dsnB)
	pgExec(t, ca, pgEndpointsDDL)
	pgExec(t, cb, strings.Replace(pgEndpointsDDL, "direct_media text", "direct_media boolean, mailboxes text", 1))
	pgExec(t, ca, `INSERT INTO ps_endpoints VALUES ('1001','udp','1001','1001','from-internal','all','ulaw','no')`)
	pgExec(t, cb, `INSERT INTO ps_endpoints VALUES ('9','udp','','','','','',true,'')`)
	before := pgDump(t, cb)
	a, b := pgPair(t, dsnA, dsnB)
	a.start()
	b.start()
	eventually(t, waitLimit, "target refuses the schema", func() error {
		st := b.status()
		for _, want := range []string{"ps_endpoints", "direct_media is text on the source, boolean on the target", "mailboxes text exists only on the target"} {
			if st.State != "error" || !strings.Contains(st.LastError, want) {
				return fmt.Errorf("state %s, error %q lacks %q", st.State, st.LastError, want)
			}
		}
		return nil
	})
	eventually(t, waitLimit, "source learns of the refusal", func() error {
		for _, ts := range a.status().Targets {
			if ts.Name == "b" && ts.State == "bad" && strings.Contains(ts.Reason, "direct_media") {
				return nil
			}
		}
		return fmt.Errorf("targets %+v", a.status().Targets)
	})
	if got := pgDump(t, cb); got != before {
		t.Fatalf("target changed: %s", got)
	}
	if s := a.log.String() + b.log.String(); strings.Contains(s, dsnA) || strings.Contains(s, dsnB) {
		t.Error("a DSN appears in the log")
	}
}
