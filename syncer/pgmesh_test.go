package syncer

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"pbxsync/internal/config"
	"pbxsync/internal/pgtest"
)

// pgMeshTrio makes members a, b and c of mesh postgres job "realtime",
// each on its own database (dsns, in that order) of a new server. With
// sites, a is in dc1, b and c in dc2, and b is dc2's preferred relay.
func pgMeshTrio(t *testing.T, sites bool) (nodes []*pgNode, dsns []string) {
	srv := pgtest.Start(t)
	for range 3 {
		dsn := srv.NewDB(t)
		c := pgtest.Connect(t, dsn)
		pgExec(t, c, pgEndpointsDDL)
		c.Close(context.Background())
		dsns = append(dsns, dsn)
	}
	nodes = []*pgNode{newPGNode(t, "a"), newPGNode(t, "b"), newPGNode(t, "c")}
	siteOf := func(n *pgNode) string {
		if !sites {
			return ""
		}
		if n.name == "a" {
			return "site = \"dc1\"\n"
		}
		return "site = \"dc2\"\n"
	}
	for i, n := range nodes {
		var b strings.Builder
		fmt.Fprintf(&b, "[node]\nname = %q\nlisten = \"127.0.0.1:%d\"\ndata_dir = %q\n%s\n", n.name, n.port, filepath.Join(n.dir, "data"), siteOf(n))
		for _, o := range nodes {
			if o != n {
				fmt.Fprintf(&b, "[[peer]]\nname = %q\naddress = \"127.0.0.1:%d\"\nid = %q\n%srelay = %v\n\n", o.name, o.port, o.id.ID.String(), siteOf(o), sites && o.name == "b")
			}
		}
		fmt.Fprintf(&b, "[[job]]\nname = \"realtime\"\ntype = \"postgres\"\ndsn = %q\ntables = [\"ps_endpoints\"]\nmode = \"mesh\"\ntargets = [\"a\", \"b\", \"c\"]\n", dsns[i])
		n.config = b.String()
	}
	return nodes, dsns
}

// pgMeshStart inserts row 100 in context rowContext on a, starts the members and
// waits until the row reached b and c; it returns a connection to each
// member's database.
func pgMeshStart(t *testing.T, nodes []*pgNode, dsns []string, rowContext string) (ca, cb, cc *pgx.Conn) {
	t.Helper()
	ca, cb, cc = pgtest.Connect(t, dsns[0]), pgtest.Connect(t, dsns[1]), pgtest.Connect(t, dsns[2])
	pgExec(t, ca, "INSERT INTO ps_endpoints (id, context) VALUES ('100', $1)", rowContext)
	for _, n := range nodes {
		n.start()
	}
	pgSame(t, "a's row reaches b", ca, cb)
	pgSame(t, "a's row reaches c", ca, cc)
	return ca, cb, cc
}

// TestPGMesh: rows changed on any member reach the others; two members
// inserting the same key while cut off from each other is a conflict with
// one winner everywhere and the losing row kept as JSON, not an error
// loop; a delete on one member removes the row everywhere.
func TestPGMesh(t *testing.T) {
	t.Parallel()
	nodes, dsns := pgMeshTrio(t, false)
	c := nodes[2]
	ca, cb, cc := pgMeshStart(t, nodes, dsns, "from-a")
	pgExec(t, cb, "INSERT INTO ps_endpoints (id, context) VALUES ('200', 'from-b')")
	pgExec(t, cc, "UPDATE ps_endpoints SET context = 'edited-on-c' WHERE id = '100'")
	pgSame(t, "changes of b and c reach a", ca, cb)
	pgSame(t, "changes of b and c reach c", ca, cc)

	// the same key inserted on a and on c while c is down
	c.stop()
	pgExec(t, ca, "INSERT INTO ps_endpoints (id, context) VALUES ('300', 'a-insert')")
	pgSame(t, "a's insert reaches b", ca, cb)
	pgExec(t, cc, "INSERT INTO ps_endpoints (id, context) VALUES ('300', 'c-insert')")
	c.start()
	pgSame(t, "a and c converge after c's return", ca, cc)
	pgSame(t, "a and b converge after c's return", ca, cb)
	found := false
	for _, n := range nodes {
		cs, err := n.agent.Store().Conflicts("realtime")
		if err != nil {
			t.Fatal(err)
		}
		for _, cf := range cs {
			if strings.Contains(cf.Path, "300") && (strings.Contains(string(cf.Row), "a-insert") || strings.Contains(string(cf.Row), "c-insert")) {
				found = true
			}
		}
	}
	if !found {
		t.Errorf("no member keeps the losing insert of key 300 as JSON")
	}
	for _, n := range nodes {
		if st := n.status(); st.LastError != "" {
			t.Errorf("%s: %s", n.name, st.LastError)
		}
	}
	pgExec(t, cb, "DELETE FROM ps_endpoints WHERE id = '200'")
	pgSame(t, "b's delete reaches a", ca, cb)
	pgSame(t, "b's delete reaches c", ca, cc)
	if d := pgDump(t, ca); strings.Contains(d, "from-b") {
		t.Errorf("row 200 still on a: %s", d)
	}
}

// TestPGMeshSites: a postgres mesh job across two sites goes through the
// same relays as a files one: a's change reaches c, in dc2, as a's index
// handed on by dc2's relay b.
func TestPGMeshSites(t *testing.T) {
	t.Parallel()
	nodes, dsns := pgMeshTrio(t, true)
	a, c := nodes[0], nodes[2]
	ca, cb, cc := pgtest.Connect(t, dsns[0]), pgtest.Connect(t, dsns[1]), pgtest.Connect(t, dsns[2])
	for _, n := range nodes {
		n.start()
	}
	eventually(t, waitLimit, "a connected to b and c", func() error {
		for _, o := range []string{"b", "c"} {
			if !a.agent.mon.Connected(o) {
				return fmt.Errorf("not connected to %s", o)
			}
		}
		return nil
	})
	pgExec(t, ca, "INSERT INTO ps_endpoints (id, context) VALUES ('100', 'from-a')")
	pgSame(t, "a's row reaches b", ca, cb)
	pgSame(t, "a's row reaches c", ca, cc)
	eventually(t, waitLimit, "c has a's index through b", func() error {
		for _, line := range strings.Split(c.log.String(), "\n") {
			if strings.Contains(line, "a member's index handed on by this site's relay") && strings.Contains(line, "author=a relay=b") {
				return nil
			}
		}
		return fmt.Errorf("not yet")
	})
	if !strings.Contains(a.log.String(), "relay of a site chosen") {
		t.Error("a chose no relay")
	}
}

// TestPGMeshChecksFailEverywhere: three members whose checks fail whatever
// the rows, each with a row of its own before they start: each applies
// the others' rows, its checks fail, and fail again on the rows put back,
// so the fault is its own: no member reverts a row or records a conflict,
// and across further runs of the checks (counted in the status) that
// stays so. Then b's checks pass again: its next run takes the rows of a
// and c, and still nobody records a conflict.
func TestPGMeshChecksFailEverywhere(t *testing.T) {
	t.Parallel()
	nodes, dsns := pgMeshTrio(t, false)
	b := nodes[1]
	conns := []*pgx.Conn{pgtest.Connect(t, dsns[0]), pgtest.Connect(t, dsns[1]), pgtest.Connect(t, dsns[2])}
	for i, n := range nodes {
		n.checks.fail.Store(true)
		n.tune = func(o *Options) { o.ChecksRetry = time.Millisecond } // each tick
		pgExec(t, conns[i], "INSERT INTO ps_endpoints (id, context) VALUES ($1, $2)", fmt.Sprint(100*(i+1)), "from-"+n.name)
	}
	for _, n := range nodes {
		n.start()
	}
	conflicts := func() map[string]int {
		out := map[string]int{}
		for _, n := range nodes {
			cs, err := n.agent.Store().Conflicts("realtime")
			if err != nil {
				t.Fatal(err)
			}
			out[n.name] = len(cs)
		}
		return out
	}
	retries := map[string]uint64{}
	eventually(t, waitLimit, "every member's status says its checks fail on the rows before too", func() error {
		for name, c := range conflicts() {
			if c > 0 {
				t.Fatalf("%s records %d conflicts: the members reject each other's rows (%v)", name, c, conflicts())
			}
		}
		for _, n := range nodes {
			st := n.status()
			if st.State != "checks-failing" || !strings.Contains(st.LastError, "checks fail here on the content they had before too") {
				return fmt.Errorf("%s: state %q: %q", n.name, st.State, st.LastError)
			}
			retries[n.name] = st.CheckRetries
		}
		return nil
	})
	eventually(t, waitLimit, "every member ran its checks again twice", func() error {
		for _, n := range nodes {
			if st := n.status(); st.CheckRetries < retries[n.name]+2 {
				return fmt.Errorf("%s ran its checks again %d times, %d before", n.name, st.CheckRetries, retries[n.name])
			}
		}
		return nil
	})
	for i, n := range nodes {
		if got := pgDump(t, conns[i]); strings.Count(got, "\n") != 0 || !strings.Contains(got, "from-"+n.name) {
			t.Errorf("%s holds %q, want only its own row", n.name, got)
		}
	}
	b.checks.fail.Store(false)
	eventually(t, waitLimit, "b takes the rows of a and c once its checks pass", func() error {
		if got := pgDump(t, conns[1]); strings.Count(got, "\n") != 2 {
			return fmt.Errorf("b holds %q", got)
		}
		return nil
	})
	if st := b.status(); st.State != "good" {
		t.Errorf("b: state %q: %q", st.State, st.LastError)
	}
	if got := pgDump(t, conns[0]); strings.Count(got, "\n") != 0 {
		t.Errorf("a, whose checks still fail, holds %q", got)
	}
	for name, c := range conflicts() {
		if c > 0 {
			t.Errorf("%s records %d conflicts", name, c)
		}
	}
}

// pgBadRowCheck is an AfterApply that fails while the database holds a
// row of ps_endpoints whose context is BAD: a check that judges the
// content.
type pgBadRowCheck struct{ dsn string }

func (c pgBadRowCheck) AfterApply(ctx context.Context, job *config.Job, gen uint64, changed []string) error {
	conn, err := pgx.Connect(ctx, c.dsn)
	if err != nil {
		return err
	}
	defer conn.Close(context.Background())
	var n int
	if err := conn.QueryRow(ctx, "SELECT count(*) FROM ps_endpoints WHERE context = 'BAD'").Scan(&n); err != nil {
		return err
	}
	if n > 0 {
		return fmt.Errorf("check: %d endpoints in context BAD", n)
	}
	return nil
}

// TestPGMeshRejectedEverywhere: a row changed on a fails b's check, which
// passes on the rows b held before: the row is a's fault, so b rejects it
// and reverts it, and every member (a included) ends without it; b keeps
// it as a conflict record with its reason. Before, b's undo of the change
// failed (hostmon.Apply's before image held the row twice), b's next read
// of its table found a's row as a change of its own, and it won
// everywhere.
func TestPGMeshRejectedEverywhere(t *testing.T) {
	t.Parallel()
	nodes, dsns := pgMeshTrio(t, false)
	b := nodes[1]
	b.tune = func(o *Options) { o.AfterApply = pgBadRowCheck{dsn: dsns[1]} }
	ca, cb, cc := pgMeshStart(t, nodes, dsns, "good")
	pgExec(t, ca, "UPDATE ps_endpoints SET context = 'BAD' WHERE id = '100'")
	eventually(t, waitLimit, "b rejects a's row", func() error {
		if st := b.status(); !strings.Contains(st.LastError, "rejected by b") || st.State == "checks-failing" {
			return fmt.Errorf("b: state %q: %q", st.State, st.LastError)
		}
		return nil
	})
	eventually(t, waitLimit, "every member back on the row b accepts", func() error {
		for i, c := range []*pgx.Conn{ca, cb, cc} {
			if d := pgDump(t, c); strings.Contains(d, "BAD") || !strings.Contains(d, "good") {
				return fmt.Errorf("%s holds %s", nodes[i].name, d)
			}
		}
		return nil
	})
	// b keeps the rejected version as a conflict record with its reason
	// (without the row as JSON, and a keeps none: see docs/protocol.md,
	// "Not yet")
	cs, err := b.agent.Store().Conflicts("realtime")
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, cf := range cs {
		if strings.Contains(cf.Path, "100") && cf.Loser.Node == "a" && strings.Contains(cf.Reason, "rejected by b") {
			found = true
		}
	}
	if !found {
		t.Errorf("b keeps no record of the rejected row: %+v", cs)
	}
}
