package syncer

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"fmt"
	"maps"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"pbxsync/internal/config"
	"pbxsync/internal/index"
	"pbxsync/internal/wanlink"
	"pbxsync/internal/wire"
)

// meshSites is members a and b in dc1 and c, d and e in dc2 of mesh job
// "conf", c dc2's preferred relay. Every member reaches every other; a
// member of one site reaches one of the other site through a wanlink
// forwarder of its own (one per direction), whose counts toDC2 reads.
type meshSites struct {
	a, b, c, d, e *tnode
	links         map[[2]string]*wanlink.Link // [from, to] → the link from dials to reach to
}

// newMeshSites starts a meshSites and waits until every member holds a's
// first file.
func newMeshSites(t *testing.T) *meshSites { return newMeshSitesTuned(t, nil) }

// newMeshSitesTuned is newMeshSites with tune called on the configured
// members before they start (nil: none).
func newMeshSitesTuned(t *testing.T, tune func(*meshSites)) *meshSites {
	h := newHarness(t)
	ms := &meshSites{a: h.node("a"), b: h.node("b"), c: h.node("c"), d: h.node("d"), e: h.node("e"), links: map[[2]string]*wanlink.Link{}}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	site := map[*tnode]string{ms.a: "dc1", ms.b: "dc1", ms.c: "dc2", ms.d: "dc2", ms.e: "dc2"}
	for _, n := range ms.all() {
		n.Node = fmt.Sprintf("site = %q", site[n])
		for _, o := range ms.all() {
			if o == n {
				continue
			}
			addr := o.addr()
			if site[o] != site[n] {
				l, err := wanlink.Start(ctx, wanlink.Config{Upstream: o.addr(), IdleTimeout: time.Hour})
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { l.Close() })
				ms.links[[2]string{n.name, o.name}] = l
				addr = l.Addr().String()
			}
			n.Peers = append(n.Peers, tpeer{Name: o.name, Address: addr, ID: o.id.ID, Site: site[o], Relay: o == ms.c})
		}
		n.Jobs = []tjob{{Name: "conf", Mode: config.ModeMesh, Targets: []string{"a", "b", "c", "d", "e"}}}
	}
	ms.a.write("extensions.conf", seedExtensions, 0o644)
	if tune != nil {
		tune(ms)
	}
	for _, n := range ms.all() {
		n.start()
	}
	sameContent(t, "initial sync", ms.all()...)
	return ms
}

func (ms *meshSites) all() []*tnode { return []*tnode{ms.a, ms.b, ms.c, ms.d, ms.e} }

// toDC2 returns the bytes that crossed from dc1 to dc2 on each link
// ("a>c": on the link a dials to reach c; "c<a": on the link c dials to
// reach a) and their sum.
func (ms *meshSites) toDC2() (map[string]uint64, uint64) {
	out := map[string]uint64{}
	var sum uint64
	for k, l := range ms.links {
		c := l.Counts()
		if k[0] == "a" || k[0] == "b" {
			out[k[0]+">"+k[1]] = c.Up // dialled from dc1: what dc1 sent
			sum += c.Up
		} else {
			out[k[0]+"<"+k[1]] = c.Down // dialled from dc2: what it received
			sum += c.Down
		}
	}
	return out, sum
}

// oneCopy checks that a change of size bytes crossed to dc2 once since
// before: one link carried about one copy, no other link half of one. The
// rest, on every link, is the members' indexes and states, pings and
// acks: it grows with the time the test takes, so it is logged, not
// bounded.
func (ms *meshSites) oneCopy(t *testing.T, what string, before map[string]uint64, size uint64) {
	t.Helper()
	now, _ := ms.toDC2()
	var sum uint64
	var parts, copies []string
	var copyBytes uint64
	for _, k := range slices.Sorted(maps.Keys(now)) {
		if d := now[k] - before[k]; d > 0 {
			parts = append(parts, fmt.Sprintf("%s %d", k, d))
			sum += d
			if d >= size/2 {
				copies, copyBytes = append(copies, k), d
			}
		}
	}
	t.Logf("%s: %d bytes to dc2 for a %d-byte change (%.2f copies); per link: %s", what, sum, size, float64(sum)/float64(size), strings.Join(parts, ", "))
	if len(copies) != 1 || copyBytes < size || copyBytes > size*3/2 {
		t.Errorf("%s: the change crossed to dc2 on links %v: want one copy on one link", what, copies)
	}
}

// throughC checks that a change of a's of size bytes crossed to dc2 once
// since before, on the link between a and dc2's relay c, and that none
// of members fetched it past c.
func (ms *meshSites) throughC(t *testing.T, what string, before map[string]uint64, size uint64, members ...*tnode) {
	t.Helper()
	for _, n := range members {
		if n.logHas("cannot fetch a member's version from this site's relay") {
			t.Errorf("%s fetched past its relay", n.name)
		}
	}
	ms.oneCopy(t, what, before, size)
	now, _ := ms.toDC2()
	if toC := now["a>c"] + now["c<a"] - before["a>c"] - before["c<a"]; toC < size {
		t.Errorf("%s: %d bytes crossed between a and the relay c: the copy did not go through c", what, toC)
	}
}

// connected waits until n is connected to every other of nodes.
func connected(t *testing.T, n *tnode, nodes ...*tnode) {
	t.Helper()
	eventually(t, waitLimit, n.name+" connected to its members", func() error {
		for _, o := range nodes {
			if o != n && !n.a().mon.Connected(o.name) {
				return fmt.Errorf("%s is not connected to %s", n.name, o.name)
			}
		}
		return nil
	})
}

// TestMeshSitesRelay: a change made in dc1 crosses to dc2 once, to its
// relay c, which takes it and hands it on; d and e fetch the content from
// c. When c stops, the rest of dc2 converges on the next change, which
// still crosses once.
func TestMeshSitesRelay(t *testing.T) {
	t.Parallel()
	s := newMeshSites(t)
	connected(t, s.a, s.all()...)

	const size = 200 << 10
	before, _ := s.toDC2()
	s.a.write("sounds/welcome.gsm", string(randBytes(11, size)), 0o644)
	sameContent(t, "a new file of a's everywhere", s.all()...)
	s.oneCopy(t, "a change of a's", before, size)
	if !s.a.logHas("relay of a site chosen", "site=dc2", "relay=c") {
		t.Error("a did not route to dc2 through c")
	}
	for _, n := range []*tnode{s.d, s.e} {
		if n.logHas("cannot fetch a member's version from this site's relay") {
			t.Errorf("%s fetched past the relay", n.name)
		}
	}

	// the relay stops: another member of dc2 takes over
	s.c.stop()
	start := time.Now()
	before, _ = s.toDC2()
	s.a.write("sounds/later.gsm", string(randBytes(12, size)), 0o644)
	sameContent(t, "a change after dc2's relay stopped", s.a, s.b, s.d, s.e)
	t.Logf("dc2 converged %v after the change without its relay", time.Since(start).Round(time.Millisecond))
	s.oneCopy(t, "a change without dc2's relay", before, size)
	if !s.a.logHas("relay of a site chosen", "site=dc2", "was=c") {
		t.Error("a chose no new relay for dc2")
	}
}

// TestMeshSitesRelayGoneSilently is TestMeshSitesRelay's failover with
// the order its flake needed made certain: dc2's relay c is cut off from
// dc1 (its WAN links drop everything; c runs on), so a records its change
// and sends it through c before it sees c gone (2.5 s without a frame);
// only then does a send its index again, for d and e, through dc2's next
// relay e. One index in one envelope naming e too: e takes it before it
// hands it on (sent apart, d's first, e handed d's on before it held the
// content, and d fetched it across the WAN). One copy crosses to dc2.
func TestMeshSitesRelayGoneSilently(t *testing.T) {
	t.Parallel()
	s := newMeshSitesTuned(t, func(ms *meshSites) {
		// e is dc2's next relay (the lower ID of d and e; c has relay =
		// true) and comes after d in name order, as in the flake's log
		if ms.d.id.ID.String() < ms.e.id.ID.String() {
			ms.d.id, ms.e.id = ms.e.id, ms.d.id
			for _, n := range ms.all() {
				for i, p := range n.Peers {
					switch p.Name {
					case "d":
						n.Peers[i].ID = ms.d.id.ID
					case "e":
						n.Peers[i].ID = ms.e.id.ID
					}
				}
			}
		}
	})
	connected(t, s.a, s.all()...)

	const size = 200 << 10
	for k, l := range s.links {
		if k[0] == "c" || k[1] == "c" {
			l.SetBlocked(true) // every link of c crosses to dc1
		}
	}
	before, _ := s.toDC2()
	s.a.write("sounds/later.gsm", string(randBytes(15, size)), 0o644)
	sameContent(t, "a change while dc2's relay is cut off", s.a, s.b, s.d, s.e)
	eventually(t, waitLimit, "a chooses e as dc2's next relay", func() error {
		// b may have been first to see c gone and send the change on
		if !s.a.logHas("relay of a site chosen", "site=dc2", "relay=e", "was=c") {
			return fmt.Errorf("not yet")
		}
		return nil
	})
	for _, n := range []*tnode{s.d, s.e} {
		if n.logHas("cannot fetch a member's version from this site's relay") {
			t.Errorf("%s fetched past its relay", n.name)
		}
	}
	s.oneCopy(t, "a change sent through dc2's relay before it was seen gone", before, size)
}

// TestMeshSitesRelayHandsOnFirst forces the interleaving of the flake
// TestMeshSitesRelay showed under load: dc2's relay c hands a's index on
// to d before c holds its content (here: an index addressed to d alone,
// as a sends one when d alone comes up, carrying a version c never took),
// and d asks c for the content at once. c fetches it from a for its site
// and serves it: one copy crosses to dc2, d does not fetch past its relay.
// The envelope is a's, signed with a's key and handed to c as from a; the
// content is in a's store and served by a, as once a recorded it.
func TestMeshSitesRelayHandsOnFirst(t *testing.T) {
	t.Parallel()
	s := newMeshSites(t)
	connected(t, s.a, s.all()...)

	const size = 200 << 10
	content := randBytes(13, size)
	ja := s.a.a().job("conf")
	h, n, err := ja.a.store.PutReader(context.Background(), bytes.NewReader(content))
	if err != nil {
		t.Fatal(err)
	}
	ja.a.store.Pin(h)
	ja.mu.Lock()
	if ja.serving == nil {
		ja.serving = &servedSet{}
	}
	ja.serving.set(h, n)
	ja.mu.Unlock()
	it := wire.Item{Path: "sounds/first.gsm", Kind: uint8(index.KindFile), Size: n, Mode: 0o644, MTime: time.Now().UnixNano(), Hash: h[:],
		Version: index.Vector{{Node: s.a.id.ID.String(), Value: 1}}}
	msg := &wire.Announce{Job: "conf", Version: 1, Origin: "a", Time: time.Now().UnixNano(), Items: []wire.Item{it}}
	env, err := wire.SealRelay(s.c.a().mon.Codec(), s.a.id.Certificate.PrivateKey.(ed25519.PrivateKey), "conf", []string{"d"}, msg)
	if err != nil {
		t.Fatal(err)
	}

	before, _ := s.toDC2()
	s.c.a().HandleMessage("a", env)
	eventually(t, waitLimit, "d holds a's version handed on by c", func() error {
		if got, err := os.ReadFile(s.d.path(it.Path)); err != nil || !bytes.Equal(got, content) {
			return fmt.Errorf("not yet (%d bytes, %v)", len(got), err)
		}
		return nil
	})
	s.throughC(t, "a version handed on before the relay held it", before, size, s.d)
}

// TestMeshSitesRelayFiltered: dc2's relay c excludes what a changes (its
// own filters), so it never takes it, yet hands a's index on to d and e,
// who both ask c for the content: c fetches it from a once for its site
// and serves both. One copy crosses to dc2, through c.
func TestMeshSitesRelayFiltered(t *testing.T) {
	t.Parallel()
	s := newMeshSitesTuned(t, func(ms *meshSites) { ms.c.Jobs[0].Extra = `exclude = ["*.gsm"]` + "\n" })
	connected(t, s.a, s.all()...)

	const size = 200 << 10
	before, _ := s.toDC2()
	s.a.write("sounds/welcome.gsm", string(randBytes(14, size)), 0o644)
	sameContent(t, "a's new file on the members that take it", s.a, s.b, s.d, s.e)
	if _, err := os.Stat(s.c.path("sounds/welcome.gsm")); err == nil {
		t.Error("c took a file its filters exclude")
	}
	s.throughC(t, "a change dc2's relay excludes", before, size, s.d, s.e)
}

// TestMeshSitesRelayForgery: a relay cannot forge a member's index: one
// signed by the relay in a's name, or a's signed one altered, is refused
// by the far member, whose tree keeps what it had; the mesh still
// converges afterwards.
func TestMeshSitesRelayForgery(t *testing.T) {
	t.Parallel()
	s := newMeshSites(t)
	codec := s.d.a().mon.Codec()
	evil := index.Of(index.Item{Path: "extensions.conf", Kind: index.KindFile, Mode: 0o644, Size: 5, Hash: index.Sum([]byte("evil\n")),
		Version: index.Vector{{Node: s.a.id.ID.String(), Value: 1 << 40}}})
	forged := &wire.Announce{Job: "conf", Version: 1 << 40, Origin: "a", Time: time.Now().UnixNano(), Items: wire.FromIndex(evil)}

	// signed by the relay in a's name
	cKey := s.c.id.Certificate.PrivateKey.(ed25519.PrivateKey)
	env, err := wire.SealRelay(codec, cKey, "conf", []string{"d"}, forged)
	if err != nil {
		t.Fatal(err)
	}
	s.d.a().HandleMessage("c", env)
	eventually(t, waitLimit, "d refuses the relay's index in a's name", func() error {
		if !s.d.logHas("refusing a relayed mesh index: it is not signed by the member that made it", "signer=c", "origin=a") {
			return fmt.Errorf("not refused yet")
		}
		return nil
	})

	// a's signature over another index
	aKey := s.a.id.Certificate.PrivateKey.(ed25519.PrivateKey)
	honest := &wire.Announce{Job: "conf", Version: 1, Origin: "a", Time: time.Now().UnixNano(), Items: []wire.Item{}}
	env, err = wire.SealRelay(codec, aKey, "conf", []string{"d"}, honest)
	if err != nil {
		t.Fatal(err)
	}
	if env.Payload, err = codec.Encode(forged); err != nil {
		t.Fatal(err)
	}
	s.d.a().HandleMessage("c", env)
	eventually(t, waitLimit, "d refuses an altered index", func() error {
		if !s.d.logHas("refusing a relayed message", "signature does not verify") {
			return fmt.Errorf("not refused yet")
		}
		return nil
	})
	if got := string(s.d.read("extensions.conf")); got != seedExtensions {
		t.Fatalf("d holds %q after the forgeries", got)
	}

	// a's own indexes still go through
	content := "exten => 300,1,Hangup()\n"
	s.a.write("sub/new.conf", content, 0o644)
	sameContent(t, "a genuine change after the forgeries", s.all()...)
	if got := string(s.d.read("extensions.conf")); got != seedExtensions {
		t.Fatalf("d holds %q", got)
	}
}
