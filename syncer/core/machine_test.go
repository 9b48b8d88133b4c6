package core

import (
	"fmt"
	"strings"
	"testing"

	"pbxsync/internal/index"
)

// The tables below are the mesh protocol: each row is one state of a
// member, one event, and what the member does about it, written as
// describe prints a Ready:
//
//	store P            keep P's local content in the store
//	persist P{vec}     the index entry of P is now vec (P- a tombstone)
//	apply#N from X: write P | remove P | keep P (loser for a record)
//	record P: W beats L (winner and loser authors, "-" a deletion)
//	send X             the whole index goes to member X

func vecString(vec index.Vector) string {
	var parts []string
	for _, c := range vec {
		parts = append(parts, fmt.Sprintf("%s:%d", c.Node, c.Value))
	}
	return "{" + strings.Join(parts, ",") + "}"
}

func describe(r Ready) string {
	var out []string
	for _, it := range r.Store {
		out = append(out, "store "+it.Path)
	}
	for _, it := range r.Persist {
		d := ""
		if it.Deleted {
			d = "-"
		}
		out = append(out, "persist "+it.Path+d+vecString(it.Version))
	}
	if a := r.Apply; a != nil {
		var ops []string
		for _, it := range a.Items {
			if it.Deleted {
				ops = append(ops, "remove "+it.Path)
			} else {
				ops = append(ops, "write "+it.Path)
			}
		}
		for _, it := range a.Keep {
			ops = append(ops, "keep "+it.Path)
		}
		out = append(out, fmt.Sprintf("apply#%d from %s: %s", a.ID, a.Peer, strings.Join(ops, ", ")))
		for _, c := range a.Records {
			w, l := c.Winner.Node, c.Loser.Node
			if c.Winner.Deleted {
				w += "-"
			}
			if c.Loser.Deleted {
				l += "-"
			}
			out = append(out, fmt.Sprintf("record %s: %s beats %s", c.Path, w, l))
		}
	}
	for _, c := range r.Records {
		w := c.Winner.Node
		if c.Winner.Deleted {
			w += "-"
		}
		out = append(out, fmt.Sprintf("reject %s: %s beats %s: %s", c.Path, w, c.Loser.Node, c.Reason))
	}
	for _, m := range r.Send {
		out = append(out, "send "+m.To)
	}
	return strings.Join(out, "; ")
}

// member is a at rest with items, b and c up and already sent everything.
func member(p Policy, items ...index.Item) *Machine {
	m := New(Config{Self: "a", Members: []string{"b", "c"}, Policy: p}, items)
	m.Step(PeerUp{Peer: "b"})
	m.Step(PeerUp{Peer: "c"})
	return m
}

func tree(items ...index.Item) index.Index {
	x := index.New(len(items))
	for _, it := range items {
		it.Version = nil
		x.Set(it)
	}
	return x
}

func TestLocalScanTable(t *testing.T) {
	cases := []struct {
		name  string
		index []index.Item
		tree  index.Index
		want  string
	}{
		{"new file: this node's first change", nil, tree(file("x", "1", 5, nil)),
			"store x; persist x{a:1}; send b; send c"},
		{"unchanged file: nothing", []index.Item{file("x", "1", 5, v("a", 1))}, tree(file("x", "1", 5, nil)), ""},
		{"touched file (mtime only): nothing", []index.Item{file("x", "1", 5, v("a", 1))}, tree(file("x", "1", 9, nil)), ""},
		{"edited file: this node's counter goes up", []index.Item{file("x", "1", 5, v("a", 1, "b", 3))}, tree(file("x", "2", 9, nil)),
			"store x; persist x{a:2,b:3}; send b; send c"},
		{"mode change is a change", []index.Item{file("x", "1", 5, v("b", 1))}, func() index.Index {
			x := tree(file("x", "1", 5, nil))
			it, _ := x.Get("x")
			it.Mode = 0o600
			x.Set(it)
			return x
		}(), "store x; persist x{a:1,b:1}; send b; send c"},
		{"deleted file: a tombstone by this node", []index.Item{file("x", "1", 5, v("b", 1))}, tree(),
			"persist x-{a:1,b:1}; send b; send c"},
		{"still deleted: nothing", []index.Item{gone("x", 5, v("a", 1, "b", 1))}, tree(), ""},
		{"made again after a delete: a new version over the tombstone", []index.Item{gone("x", 5, v("a", 1, "b", 1))}, tree(file("x", "3", 9, nil)),
			"store x; persist x{a:2,b:1}; send b; send c"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			m := member(Policy{}, c.index...)
			if got := describe(m.Step(LocalScan{Time: 100e9, Tree: c.tree})); got != c.want {
				t.Errorf("\n got: %s\nwant: %s", got, c.want)
			}
		})
	}
}

func TestRemoteIndexTable(t *testing.T) {
	newest, preferC := Policy{Kind: Newest}, Policy{Kind: Prefer, Node: "c"}
	cases := []struct {
		name   string
		p      Policy
		local  []index.Item // a's index
		remote index.Item   // what b sends for x
		want   string       // the Step(RemoteIndex)
		after  string       // the Step(Applied) that follows
		final  string       // a's entry of x at the end: vector and content
	}{
		{"unknown here: take it", newest, nil, file("x", "B", 5, v("b", 1)),
			"apply#1 from b: write x", "persist x{b:1}; send b; send c", "{b:1} B"},
		{"unknown tombstone: into the index only", newest, nil, gone("x", 5, v("b", 2)),
			"apply#1 from b: ", "persist x-{b:2}; send b; send c", "{b:2} -"},
		{"dominates ours: take it", newest, []index.Item{file("x", "A", 5, v("a", 1))}, file("x", "B", 6, v("a", 1, "b", 1)),
			"apply#1 from b: write x", "persist x{a:1,b:1}; send b; send c", "{a:1,b:1} B"},
		{"dominating delete: remove it", newest, []index.Item{file("x", "A", 5, v("a", 1))}, gone("x", 6, v("a", 1, "b", 1)),
			"apply#1 from b: remove x", "persist x-{a:1,b:1}; send b; send c", "{a:1,b:1} -"},
		{"dominates our tombstone: write it again", newest, []index.Item{gone("x", 5, v("a", 2))}, file("x", "B", 6, v("a", 2, "b", 1)),
			"apply#1 from b: write x", "persist x{a:2,b:1}; send b; send c", "{a:2,b:1} B"},
		{"same content, newer vector: index only", newest, []index.Item{file("x", "A", 5, v("a", 1))}, file("x", "A", 5, v("a", 1, "b", 1)),
			"apply#1 from b: ", "persist x{a:1,b:1}; send b; send c", "{a:1,b:1} A"},
		{"dominated by ours: ignore", newest, []index.Item{file("x", "A", 5, v("a", 2, "b", 1))}, file("x", "B", 9, v("a", 1, "b", 1)),
			"", "", "{a:2,b:1} A"},
		{"equal: ignore", newest, []index.Item{file("x", "A", 5, v("a", 1))}, file("x", "A", 5, v("a", 1)),
			"", "", "{a:1} A"},
		{"equal, same content, later mtime: take the mtime", newest, []index.Item{file("x", "A", 5, v("a", 1, "b", 1))}, file("x", "A", 8, v("a", 1, "b", 1)),
			"apply#1 from b: ", "persist x{a:1,b:1}; send b; send c", "{a:1,b:1} A"},
		{"concurrent, same content: merge the vectors, no record", newest, []index.Item{file("x", "A", 5, v("a", 1))}, file("x", "A", 7, v("b", 1)),
			"apply#1 from b: ", "persist x{a:1,b:1}; send b; send c", "{a:1,b:1} A"},
		{"concurrent, theirs newer: take theirs, ours is the record", newest, []index.Item{file("x", "A", 5, v("a", 2))}, file("x", "B", 7, v("a", 1, "b", 1)),
			"apply#1 from b: write x; record x: b beats a", "persist x{a:3,b:1}; send b; send c", "{a:3,b:1} B"},
		{"concurrent, ours newer: keep ours, theirs is fetched for the record", newest, []index.Item{file("x", "A", 9, v("a", 2))}, file("x", "B", 7, v("a", 1, "b", 1)),
			"apply#1 from b: keep x; record x: a beats b", "persist x{a:3,b:1}; send b; send c", "{a:3,b:1} A"},
		{"concurrent, same mtime: lower author ID wins", newest, []index.Item{file("x", "A", 7, v("a", 2))}, file("x", "B", 7, v("a", 1, "b", 1)),
			"apply#1 from b: keep x; record x: a beats b", "persist x{a:3,b:1}; send b; send c", "{a:3,b:1} A"},
		{"their edit concurrent with our delete: the edit wins, the delete is the record", newest, []index.Item{gone("x", 9, v("a", 2))}, file("x", "B", 7, v("a", 1, "b", 1)),
			"apply#1 from b: write x; record x: b beats a-", "persist x{a:3,b:1}; send b; send c", "{a:3,b:1} B"},
		{"their delete concurrent with our edit: ours stays, the delete is the record", newest, []index.Item{file("x", "A", 5, v("a", 2))}, gone("x", 9, v("a", 1, "b", 1)),
			"apply#1 from b: ; record x: a beats b-", "persist x{a:3,b:1}; send b; send c", "{a:3,b:1} A"},
		{"concurrent deletes: merge, no record", newest, []index.Item{gone("x", 5, v("a", 2))}, gone("x", 9, v("a", 1, "b", 1)),
			"apply#1 from b: ", "persist x-{a:2,b:1}; send b; send c", "{a:2,b:1} -"},
		{"prefer:c: c's older edit beats our newer one", preferC, []index.Item{file("x", "A", 9, v("a", 2))}, file("x", "C", 7, v("a", 1, "c", 1)),
			"apply#1 from b: write x; record x: c beats a", "persist x{a:3,c:1}; send b; send c", "{a:3,c:1} C"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			m := member(c.p, c.local...)
			r := m.Step(RemoteIndex{Time: 100e9, Peer: "b", Items: []index.Item{c.remote}})
			if got := describe(r); got != c.want {
				t.Errorf("remote index:\n got: %s\nwant: %s", got, c.want)
			}
			if r.Apply != nil {
				if got := describe(m.Step(Applied{ID: r.Apply.ID})); got != c.after {
					t.Errorf("applied:\n got: %s\nwant: %s", got, c.after)
				}
			} else if c.after != "" {
				t.Errorf("no apply; want %s after it", c.after)
			}
			it, _ := m.Item("x")
			content := "-"
			if !it.Deleted {
				for _, s := range []string{"A", "B", "C"} {
					if it.Hash == index.Sum([]byte(s)) {
						content = s
					}
				}
			}
			if got := vecString(it.Version) + " " + content; got != c.final {
				t.Errorf("entry of x: %s, want %s", got, c.final)
			}
		})
	}
}

func TestAppliedTable(t *testing.T) {
	base := []index.Item{file("x", "A", 5, v("a", 1))}
	remote := RemoteIndex{Time: 10e9, Peer: "b", Items: []index.Item{file("x", "B", 6, v("a", 1, "b", 1))}}
	t.Run("failed apply: nothing taken, the failure kept, the next index decides again", func(t *testing.T) {
		m := member(Policy{}, base...)
		r := m.Step(remote)
		if got := describe(m.Step(Applied{ID: r.Apply.ID, Err: "disk full"})); got != "" {
			t.Errorf("failed apply did %q", got)
		}
		if m.LastFailure() != "disk full" {
			t.Errorf("LastFailure = %q", m.LastFailure())
		}
		if got := describe(m.Step(remote)); got != "apply#2 from b: write x" {
			t.Errorf("next index: %s", got)
		}
	})
	t.Run("an unknown or old apply ID: ignored", func(t *testing.T) {
		m := member(Policy{}, base...)
		r := m.Step(remote)
		if got := describe(m.Step(Applied{ID: r.Apply.ID + 7})); got != "" {
			t.Errorf("unknown ID did %q", got)
		}
	})
	t.Run("a local edit between decision and report: the edit stays, decided again", func(t *testing.T) {
		m := member(Policy{}, base...)
		r := m.Step(remote)
		m.Step(LocalScan{Time: 11e9, Tree: tree(file("x", "A2", 11, nil))})
		if got := describe(m.Step(Applied{ID: r.Apply.ID})); got != "" {
			t.Errorf("applied over a local edit: %s", got)
		}
		if got := describe(m.Step(remote)); got != "apply#2 from b: keep x; record x: a beats b" {
			t.Errorf("decided again: %s", got)
		}
	})
}

func TestRejectedTable(t *testing.T) {
	cases := []struct {
		name   string
		local  []index.Item
		remote []index.Item
		want   string // the Step(Rejected) after the Step(RemoteIndex)
		final  string // a's entry of x
	}{
		{"a rejected edit: reverted by a newer version of ours, the edit recorded",
			[]index.Item{file("x", "A", 5, v("a", 1))}, []index.Item{file("x", "B", 6, v("a", 1, "b", 1))},
			"persist x{a:2,b:1}; reject x: a beats b: check failed; send b; send c", "{a:2,b:1} A"},
		{"a rejected new file: reverted by a deletion",
			nil, []index.Item{file("x", "B", 6, v("b", 1))},
			"persist x-{a:1,b:1}; reject x: a- beats b: check failed; send b; send c", "{a:1,b:1} -"},
		{"a rejected delete: the file comes back everywhere",
			[]index.Item{file("x", "A", 5, v("a", 1))}, []index.Item{gone("x", 6, v("a", 1, "b", 1))},
			"persist x{a:2,b:1}; reject x: a beats b: check failed; send b; send c", "{a:2,b:1} A"},
		{"what changed only the index is not reverted",
			[]index.Item{file("x", "A", 5, v("a", 1))}, []index.Item{file("x", "A", 5, v("a", 1, "b", 1))},
			"", "{a:1} A"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			m := member(Policy{}, c.local...)
			r := m.Step(RemoteIndex{Time: 100e9, Peer: "b", Items: c.remote})
			if r.Apply == nil {
				t.Fatal("no apply")
			}
			if got := describe(m.Step(Rejected{ID: r.Apply.ID, Reason: "check failed"})); got != c.want {
				t.Errorf("rejected:\n got: %s\nwant: %s", got, c.want)
			}
			it, _ := m.Item("x")
			content := "-"
			if !it.Deleted {
				content = map[index.Hash]string{index.Sum([]byte("A")): "A", index.Sum([]byte("B")): "B"}[it.Hash]
			}
			if got := vecString(it.Version) + " " + content; got != c.final {
				t.Errorf("entry of x: %s, want %s", got, c.final)
			}
			if m.LastFailure() != "check failed" {
				t.Errorf("LastFailure = %q", m.LastFailure())
			}
		})
	}
}

func TestSendTable(t *testing.T) {
	m := New(Config{Self: "a", Members: []string{"b", "c"}, Resend: 10e9}, []index.Item{file("x", "A", 5, v("a", 1))})
	steps := []struct {
		name string
		e    Event
		want string
	}{
		{"a member comes up: it gets the index", PeerUp{Peer: "b"}, "send b"},
		{"tick before Resend: nothing", Tick{Time: 5e9}, ""},
		{"tick after Resend: the up member again", Tick{Time: 10e9}, "send b"},
		{"second member up", PeerUp{Peer: "c"}, "send c"},
		{"a member goes down", PeerDown{Peer: "b"}, ""},
		{"a local change goes to the members that are up", LocalScan{Time: 11e9, Tree: tree(file("x", "A2", 11, nil))}, "store x; persist x{a:2}; send c"},
		{"the member back: at once", PeerUp{Peer: "b"}, "send b"},
		{"nothing changed since: not again before Resend", Tick{Time: 12e9}, ""},
	}
	for _, s := range steps {
		if got := describe(m.Step(s.e)); got != s.want {
			t.Errorf("%s:\n got: %s\nwant: %s", s.name, got, s.want)
		}
	}
}

// TestPeersUpOneIndex: members that come up together (or are sent the
// index again because their relay went down) get one index, the same
// Items in every Message: the loop sends one envelope per remote site
// for it, naming the site's relay among its recipients, so the relay
// takes the index before it hands it on (syncer's carryMesh groups the
// Messages by their Items).
func TestPeersUpOneIndex(t *testing.T) {
	m := New(Config{Self: "a", Members: []string{"b", "c", "d"}, Resend: 10e9}, []index.Item{file("x", "A", 5, v("a", 1))})
	m.Step(PeersUp{Peers: []string{"b", "c", "d"}})
	r := m.Step(PeersUp{Peers: []string{"c", "d"}}) // already up, sent this revision: sent again at once
	if got := describe(r); got != "send c; send d" {
		t.Fatalf("PeersUp c, d: %s, want send c; send d", got)
	}
	if a, b := r.Send[0].Items, r.Send[1].Items; len(a) != 1 || &a[0] != &b[0] {
		t.Errorf("the members were sent two indexes (%d, %d items at %p, %p): want one", len(a), len(b), a, b)
	}
	if got := describe(m.Step(Tick{Time: 5e9})); got != "" {
		t.Errorf("tick before Resend after PeersUp: %s, want nothing", got)
	}
	if got := describe(m.Step(PeerDown{Peer: "c"})); got != "" {
		t.Errorf("PeerDown: %s", got)
	}
	if got := describe(m.Step(Tick{Time: 10e9})); got != "send b; send d" {
		t.Errorf("tick after Resend: %s, want send b; send d", got)
	}
}
