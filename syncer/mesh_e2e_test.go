package syncer

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"pbxsync/internal/config"
	"pbxsync/internal/store"
	"pbxsync/internal/wanlink"
)

// meshTrio makes members a, b and c of mesh job "conf"; with links, every
// member reaches every other through its own wanlink forwarder (one per
// direction), which a test cuts to partition them.
func meshTrio(t testing.TB, extra string, links bool) (nodes []*tnode, link map[[2]string]*wanlink.Link) {
	h := newHarness(t)
	a, b, c := h.node("a"), h.node("b"), h.node("c")
	nodes = []*tnode{a, b, c}
	link = map[[2]string]*wanlink.Link{}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	for _, n := range nodes {
		for _, o := range nodes {
			if o == n {
				continue
			}
			addr := o.addr()
			if links {
				l, err := wanlink.Start(ctx, wanlink.Config{Upstream: o.addr(), IdleTimeout: time.Hour})
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { l.Close() })
				link[[2]string{n.name, o.name}] = l
				addr = l.Addr().String()
			}
			n.Peers = append(n.Peers, tpeer{Name: o.name, Address: addr, ID: o.id.ID})
		}
		n.Jobs = []tjob{{Name: "conf", Mode: config.ModeMesh, Targets: []string{"a", "b", "c"}, Extra: extra}}
	}
	return nodes, link
}

// sameContent waits until every member's tree holds the same files with
// the same contents and modes as the first's.
func sameContent(t *testing.T, what string, nodes ...*tnode) {
	t.Helper()
	eventually(t, waitLimit, what, func() error {
		ref, err := snapshot(nodes[0].tree)
		if err != nil {
			return err
		}
		for _, n := range nodes[1:] {
			got, err := snapshot(n.tree)
			if err != nil {
				return err
			}
			for p, e := range ref {
				g, ok := got[p]
				if !ok || g.dir != e.dir || !bytes.Equal(g.content, e.content) || !e.dir && g.mode != e.mode {
					return fmt.Errorf("%s at %s: %+v, %s has %+v", nodes[0].name, p, e, n.name, g)
				}
			}
			for p := range got {
				if _, ok := ref[p]; !ok {
					return fmt.Errorf("%s has %s, %s does not", n.name, p, nodes[0].name)
				}
			}
		}
		return nil
	})
}

// losers returns every conflict record of job conf on the members, with
// the losing content (nil for a deletion) read from the member's store.
func losers(t *testing.T, nodes ...*tnode) map[string][]store.Conflict {
	out := map[string][]store.Conflict{}
	for _, n := range nodes {
		cs, err := n.a().Store().Conflicts("conf")
		if err != nil {
			t.Fatal(err)
		}
		out[n.name] = cs
	}
	return out
}

// loserContent reports whether some member keeps content as the loser of
// a conflict at path.
func loserContent(t *testing.T, path, content string, nodes ...*tnode) bool {
	for name, cs := range losers(t, nodes...) {
		for _, c := range cs {
			if c.Path != path || c.Loser.Deleted {
				continue
			}
			var buf bytes.Buffer
			for _, n := range nodes {
				if n.name == name {
					if _, err := n.a().Store().CopyTo(context.Background(), c.Loser.Hash, &buf); err != nil {
						t.Errorf("%s: conflict %s: losing content: %v", name, c.ID, err)
					}
				}
			}
			if buf.String() == content {
				return true
			}
		}
	}
	return false
}

// deleteRecorded reports whether some member records a deletion of path
// as the loser of a conflict.
func deleteRecorded(t *testing.T, path string, nodes ...*tnode) bool {
	for _, cs := range losers(t, nodes...) {
		for _, c := range cs {
			if c.Path == path && c.Loser.Deleted && !c.Winner.Deleted {
				return true
			}
		}
	}
	return false
}

// TestMeshMembersCatchUp: three members; a change made on any member
// reaches the others; a member that was down comes back with edits of its
// own and takes the others' (both directions); an edit made while down
// concurrent with another member's is resolved to one winner everywhere
// with the loser kept; an edit concurrent with a delete wins.
func TestMeshMembersCatchUp(t *testing.T) {
	t.Parallel()
	nodes, _ := meshTrio(t, "", false)
	a, b, c := nodes[0], nodes[1], nodes[2]
	a.write("a.conf", "from a\n", 0o644)
	a.write("gone.conf", "will be deleted on a\n", 0o644)
	for _, n := range nodes {
		n.start()
	}
	sameContent(t, "initial sync", a, b, c)
	b.write("b.conf", "from b\n", 0o644)
	c.write("sub/c.conf", "from c\n", 0o600)
	sameContent(t, "changes of b and c everywhere", a, b, c)
	a.write("shared.conf", "v1\n", 0o644)
	sameContent(t, "shared v1", a, b, c)

	c.stop()
	a.replace("shared.conf", []byte("edit made on a\n"), 0o644)
	os.Remove(a.path("gone.conf"))
	sameContent(t, "a's edit and delete reach b while c is down", a, b)
	time.Sleep(20 * time.Millisecond) // a later mtime than a's edit
	c.replace("shared.conf", []byte("edit made on c while down\n"), 0o644)
	c.replace("gone.conf", []byte("edited on c while a deleted it\n"), 0o644)
	c.write("offline.conf", "made on c while down\n", 0o644)
	c.start()
	sameContent(t, "all converge after c returns", a, b, c)

	if got := string(b.read("shared.conf")); got != "edit made on c while down\n" {
		t.Errorf("shared.conf = %q, want the later edit (c's)", got)
	}
	if !loserContent(t, "shared.conf", "edit made on a\n", a, b, c) {
		t.Errorf("a's losing edit of shared.conf is in no member's conflicts: %+v", losers(t, a, b, c))
	}
	if got := string(a.read("gone.conf")); got != "edited on c while a deleted it\n" {
		t.Errorf("gone.conf on a = %q, want c's edit (an edit beats a concurrent delete)", got)
	}
	if !deleteRecorded(t, "gone.conf", a, b, c) {
		t.Errorf("a's delete of gone.conf is not recorded as the losing side: %+v", losers(t, a, b, c))
	}
	if string(a.read("offline.conf")) != "made on c while down\n" {
		t.Errorf("c's offline file did not reach a")
	}
	// each member's status counts its records (the dashboard reads them
	// when the count changes); c counted the ones it had at its restart
	eventually(t, waitLimit, "the status counts the conflict records", func() error {
		for _, n := range nodes {
			cs, err := n.a().Store().Conflicts("conf")
			if err != nil {
				return err
			}
			for _, j := range n.a().Status().Jobs {
				if j.Name == "conf" && j.Conflicts != len(cs) {
					return fmt.Errorf("%s: status counts %d conflicts, its store holds %d", n.name, j.Conflicts, len(cs))
				}
			}
		}
		return nil
	})
	os.Remove(b.path("b.conf"))
	sameContent(t, "a delete on b converges", a, b, c)
	if _, err := os.Stat(a.path("b.conf")); !os.IsNotExist(err) {
		t.Errorf("b.conf still on a: %v", err)
	}
}

// TestMeshPartition: {a} | {b, c} cut apart by dropping every datagram
// between them; both sides edit, including the same file and a file one
// side deletes while the other edits; after the heal every member holds
// the same tree and every write is live or a conflict record.
func TestMeshPartition(t *testing.T) {
	t.Parallel()
	nodes, link := meshTrio(t, "", true)
	a, b, c := nodes[0], nodes[1], nodes[2]
	a.write("shared.conf", "base\n", 0o644)
	a.write("del.conf", "base\n", 0o644)
	for _, n := range nodes {
		n.start()
	}
	sameContent(t, "initial sync", a, b, c)
	cut := func(blocked bool) {
		for k, l := range link {
			if (k[0] == "a") != (k[1] == "a") {
				l.SetBlocked(blocked)
			}
		}
	}
	cut(true)
	eventually(t, waitLimit, "a sees the partition", func() error {
		if a.a().mon.Connected("b") || a.a().mon.Connected("c") || b.a().mon.Connected("a") || c.a().mon.Connected("a") {
			return fmt.Errorf("still connected across the cut")
		}
		return nil
	})
	a.replace("shared.conf", []byte("a side\n"), 0o644)
	os.Remove(a.path("del.conf"))
	a.write("only-a.conf", "a\n", 0o644)
	time.Sleep(20 * time.Millisecond)
	b.replace("shared.conf", []byte("b side\n"), 0o644)
	b.replace("del.conf", []byte("edited on b\n"), 0o644)
	c.write("only-c.conf", "c\n", 0o644)
	sameContent(t, "b and c converge inside their side", b, c)
	if _, err := os.Stat(b.path("only-a.conf")); err == nil {
		t.Fatal("a's file crossed the partition")
	}
	cut(false)
	sameContent(t, "all converge after the heal", a, b, c)
	final := string(a.read("shared.conf"))
	loser := map[string]string{"a side\n": "b side\n", "b side\n": "a side\n"}[final]
	if loser == "" {
		t.Fatalf("shared.conf converged to neither side's edit: %q", final)
	}
	if !loserContent(t, "shared.conf", loser, a, b, c) {
		t.Errorf("the losing edit %q of shared.conf is in no member's conflicts: %+v", loser, losers(t, a, b, c))
	}
	if got := string(a.read("del.conf")); got != "edited on b\n" {
		t.Errorf("del.conf = %q, want b's edit (an edit beats a concurrent delete)", got)
	}
	if !deleteRecorded(t, "del.conf", a, b, c) {
		t.Errorf("a's delete of del.conf is not recorded: %+v", losers(t, a, b, c))
	}
	for _, p := range []string{"only-a.conf", "only-c.conf"} {
		for _, n := range nodes {
			if _, err := os.Stat(n.path(p)); err != nil {
				t.Errorf("%s lacks %s after the heal: %v", n.name, p, err)
			}
		}
	}
}

// TestMeshRejectedEverywhere: a version made on a fails b's check; b rolls
// it back and reverts it with a newer version of what it held, which
// every member takes (a and c, that had applied it, roll back too); b and
// the author a keep the rejected content as a conflict record with b's
// reason, and their status and history name b.
func TestMeshRejectedEverywhere(t *testing.T) {
	t.Parallel()
	nodes, _ := meshTrio(t, "", false)
	a, b, c := nodes[0], nodes[1], nodes[2]
	b.Jobs[0].Extra = "check = \"! grep -q BAD x.conf\"\n"
	a.write("x.conf", "good\n", 0o644)
	for _, n := range nodes {
		n.start()
	}
	sameContent(t, "initial sync", a, b, c)
	a.replace("x.conf", []byte("BAD\n"), 0o644)
	eventually(t, waitLimit, "b rejects a's version", func() error {
		if st, _ := b.jobStatus("conf"); !strings.Contains(st.LastError, "rejected by b") {
			return fmt.Errorf("b's status: %q", st.LastError)
		}
		return nil
	})
	sameContent(t, "every member back on the good version", a, b, c)
	if got := string(a.read("x.conf")); got != "good\n" {
		t.Fatalf("x.conf on the author = %q, want the version b's check accepts", got)
	}
	eventually(t, waitLimit, "the author's status names b", func() error {
		if st, _ := a.jobStatus("conf"); !strings.Contains(st.LastError, "rejected by b") {
			return fmt.Errorf("a's status: %q", st.LastError)
		}
		return nil
	})
	for _, n := range []*tnode{a, b} {
		found := false
		cs, err := n.a().Store().Conflicts("conf")
		if err != nil {
			t.Fatal(err)
		}
		for _, cf := range cs {
			if cf.Path != "x.conf" {
				continue
			}
			var buf bytes.Buffer
			if _, err := n.a().Store().CopyTo(context.Background(), cf.Loser.Hash, &buf); err == nil && buf.String() == "BAD\n" {
				found = true
				if !strings.Contains(cf.Reason, "b") {
					t.Errorf("%s: record of the rejected version without b's reason: %+v", n.name, cf)
				}
			}
		}
		if !found {
			t.Errorf("%s keeps no record of the rejected content: %+v", n.name, cs)
		}
	}
	gens, err := a.a().Store().Generations("conf")
	if err != nil {
		t.Fatal(err)
	}
	named := false
	for _, g := range gens {
		if g.Origin == "b" && strings.Contains(g.Reason, "rejected by b") {
			named = true
		}
	}
	if !named {
		t.Errorf("a's history has no generation from b naming the rejection: %+v", gens)
	}
}

// TestMeshRollbackKeepsAnEditMadeDuringTheChecks: a version made on a
// fails b's check, and while that check runs x.conf is edited on b (the
// check itself makes the edit, then fails): b's rollback puts back what
// it held only where the tree still holds a's version, so the edit stays
// and is a local version of b's, live everywhere in the end or kept as
// the loser of a conflict. Before, the rollback renamed b's old version
// over the edit, which no scan had recorded: gone.
func TestMeshRollbackKeepsAnEditMadeDuringTheChecks(t *testing.T) {
	t.Parallel()
	nodes, _ := meshTrio(t, "", false)
	a, b, c := nodes[0], nodes[1], nodes[2]
	// b rejects a version with BAD in either file: a's two edits below
	// mostly make one generation, but a member's index arriving between
	// them makes a scan y.conf first (what the tree holds is recorded
	// before a member's index is taken), and that generation must be
	// rejected too
	b.Jobs[0].Extra = "check = \"if grep -q BAD x.conf y.conf; then printf 'edited on b\\\\n' > ../x.conf.tmp && mv ../x.conf.tmp x.conf; exit 1; fi\"\n"
	a.write("x.conf", "good\n", 0o644)
	a.write("y.conf", "y good\n", 0o644)
	for _, n := range nodes {
		n.start()
	}
	sameContent(t, "initial sync", a, b, c)
	a.replace("y.conf", []byte("y BAD\n"), 0o644) // rolled back on b with x.conf
	a.replace("x.conf", []byte("BAD\n"), 0o644)
	eventually(t, waitLimit, "b rejects a's version", func() error {
		if st, _ := b.jobStatus("conf"); !strings.Contains(st.LastError, "rejected by b") {
			return fmt.Errorf("b's status: %q", st.LastError)
		}
		return nil
	})
	sameContent(t, "every member on one version", a, b, c)
	if got := string(b.read("x.conf")); got != "edited on b\n" && !loserContent(t, "x.conf", "edited on b\n", a, b, c) {
		t.Fatalf("x.conf on b = %q, and no member keeps b's edit made during its check: lost", got)
	}
	t.Logf("x.conf on every member: %q", b.read("x.conf"))
	if got := string(b.read("y.conf")); got != "y good\n" {
		t.Errorf("y.conf on b = %q, want the version before the rejected one", got)
	}
}
