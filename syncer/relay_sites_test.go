package syncer

import (
	"context"
	"crypto/ed25519"
	"fmt"
	"os"
	"testing"

	"github.com/klauspost/compress/zstd"

	"pbxsync/internal/index"
	"pbxsync/internal/store"
	"pbxsync/internal/wire"
)

// sitesFarm makes origin a in dc1 and targets b, c, d in dc2 of job
// "conf". b is dc2's preferred relay; a and d pin each other without an
// address, so they never connect: d hears from a only through a relay.
// extra is appended to the job.
func sitesFarm(t *testing.T, extra string) (a, b, c, d *tnode) {
	h := newHarness(t)
	a, b, c, d = h.node("a"), h.node("b"), h.node("c"), h.node("d")
	a.Node = `site = "dc1"`
	a.Peers = []tpeer{
		{Name: "b", Address: b.addr(), ID: b.id.ID, Site: "dc2", Relay: true},
		{Name: "c", Address: c.addr(), ID: c.id.ID, Site: "dc2"},
		{Name: "d", ID: d.id.ID, Site: "dc2"},
	}
	for _, n := range []*tnode{b, c, d} {
		n.Node = `site = "dc2"`
		aAddr := a.addr()
		if n == d {
			aAddr = ""
		}
		n.Peers = []tpeer{{Name: "a", Address: aAddr, ID: a.id.ID, Site: "dc1"}}
		for _, o := range []*tnode{b, c, d} {
			if o != n {
				n.Peers = append(n.Peers, tpeer{Name: o.name, Address: o.addr(), ID: o.id.ID})
			}
		}
	}
	conf := tjob{Name: "conf", Source: "a", Targets: []string{"b", "c", "d"}, Extra: extra}
	for _, n := range []*tnode{a, b, c, d} {
		n.Jobs = []tjob{conf}
	}
	return a, b, c, d
}

// startSites writes the first version on origin a, starts nodes and
// waits until they hold it.
func startSites(t *testing.T, a *tnode, nodes ...*tnode) {
	t.Helper()
	a.write("extensions.conf", seedExtensions, 0o644)
	a.start()
	for _, n := range nodes {
		n.start()
	}
	converged(t, "initial sync", a, nodes...)
}

// vias returns the via of each target row of job conf on n.
func vias(n *tnode) map[string]string {
	js, _ := n.jobStatus("conf")
	out := map[string]string{}
	for _, t := range js.Targets {
		out[t.Name] = t.Via
	}
	return out
}

// sentTo sums the bytes a sent on its connections to peers.
func sentTo(a *tnode, peers ...string) uint64 {
	var n uint64
	for _, p := range a.a().Status().Peers {
		if contains(peers, p.Name) {
			n += p.BytesSent
		}
	}
	return n
}

// TestSitesRelay: a change from dc1 crosses to dc2 once, through its
// relay, which hands it on inside dc2 (to d as well, which has no link to
// the origin); the origin's status shows the path; when the relay stops,
// another dc2 target takes over; a rollback at the origin reaches dc2.
func TestSitesRelay(t *testing.T) {
	t.Parallel()
	a, b, c, d := sitesFarm(t, "")
	startSites(t, a, b, c, d)
	eventually(t, waitLimit, "origin status shows the relay", func() error {
		if v := vias(a); v["b"] != "" || v["c"] != "b" || v["d"] != "b" {
			return fmt.Errorf("vias %v, want b direct, c and d via b", v)
		}
		return nil
	})
	for _, p := range d.a().Status().Peers {
		if p.Name == "a" && (p.Connected || p.BytesReceived > 0) {
			t.Fatalf("d talked to a directly: %+v", p)
		}
	}

	// one copy of a change crosses to dc2, not one per target
	const size = 200 << 10
	before := sentTo(a, "b", "c", "d")
	a.write("sounds/welcome.gsm", string(randBytes(7, size)), 0o644)
	converged(t, "a new file in dc2", a, b, c, d)
	waitGood(t, d, "conf")
	wan := sentTo(a, "b", "c", "d") - before
	// d's answer came back through b, signed by d
	eventually(t, waitLimit, "the origin has d's answer", func() error {
		js, _ := a.jobStatus("conf")
		for _, tr := range js.Targets {
			if tr.Name == "d" && (tr.State != "good" || tr.Version != js.Generation) {
				return fmt.Errorf("d: %s at %d, origin at %d", tr.State, tr.Version, js.Generation)
			} else if tr.Name == "d" {
				return nil
			}
		}
		return fmt.Errorf("no row of d in %+v", js.Targets)
	})
	t.Logf("bytes from dc1 to dc2 for a %d-byte change to 3 targets: %d (%.2f copies)", size, wan, float64(wan)/size)
	if wan < size || wan > size*13/10 {
		t.Errorf("origin sent %d bytes to dc2 for a %d-byte change: want about one copy", wan, size)
	}

	// the relay stops: c takes over and brings d the next change
	b.stop()
	a.write("extensions.conf", seedExtensions+"exten => 200,1,Hangup()\n", 0o644)
	converged(t, "a change after the relay stopped", a, c, d)
	eventually(t, waitLimit, "origin shows the new relay", func() error {
		if v := vias(a); v["d"] != "c" || v["c"] != "" {
			return fmt.Errorf("vias %v, want c direct, d via c", v)
		}
		return nil
	})

	// a rollback at the origin reaches the far site
	if _, err := a.a().Rollback(context.Background(), "conf", 0, false); err != nil {
		t.Fatal(err)
	}
	eventually(t, waitLimit, "rollback reached dc2", func() error {
		if got := string(d.read("extensions.conf")); got != seedExtensions {
			return fmt.Errorf("d holds %q", got)
		}
		return nil
	})
	converged(t, "after the rollback", a, c, d)
}

// TestSitesRelayForgery: a relay cannot forge what the origin announces:
// an announcement signed by the relay itself, or the origin's signed one
// with its manifest altered, is refused by the far target, which keeps
// its good state. The job rolls out one target at a time, across sites.
func TestSitesRelayForgery(t *testing.T) {
	t.Parallel()
	a, b, c, d := sitesFarm(t, `order = "rolling"`)
	startSites(t, a, b, c, d)
	waitGood(t, d, "conf")
	js, _ := d.jobStatus("conf")
	codec := d.a().mon.Codec()
	evil := index.Of(index.Item{Path: "extensions.conf", Kind: index.KindFile, Mode: 0o644, Size: 5, Hash: index.Sum([]byte("evil\n"))})
	forged := &wire.Announce{Job: "conf", Version: 1 << 40, Origin: "a", Items: wire.FromIndex(evil)}

	// signed by the relay: not the job's source
	bKey := b.id.Certificate.PrivateKey.(ed25519.PrivateKey)
	env, err := wire.SealRelay(codec, bKey, "conf", []string{"d"}, forged)
	if err != nil {
		t.Fatal(err)
	}
	d.a().HandleMessage("b", env)
	eventually(t, waitLimit, "d refuses the relay's own announcement", func() error {
		if !d.logHas("refusing a relayed announcement: it is not signed by the job's source") {
			return fmt.Errorf("not refused yet")
		}
		return nil
	})

	// the origin's signature over another manifest
	aKey := a.id.Certificate.PrivateKey.(ed25519.PrivateKey)
	honest := &wire.Announce{Job: "conf", Version: 1 << 40, Origin: "a", Items: wire.FromIndex(index.Index{})}
	env, err = wire.SealRelay(codec, aKey, "conf", []string{"d"}, honest)
	if err != nil {
		t.Fatal(err)
	}
	altered, err := codec.Encode(forged)
	if err != nil {
		t.Fatal(err)
	}
	env.Payload = altered
	d.a().HandleMessage("b", env)
	eventually(t, waitLimit, "d refuses an altered manifest", func() error {
		if !d.logHas("refusing a relayed message", "signature does not verify") {
			return fmt.Errorf("not refused yet")
		}
		return nil
	})

	if got := string(d.read("extensions.conf")); got != seedExtensions {
		t.Fatalf("d holds %q after the forgeries", got)
	}
	after, _ := d.jobStatus("conf")
	if after.State != "good" || after.Generation != js.Generation {
		t.Fatalf("d's job: %s generation %d, was good at %d", after.State, after.Generation, js.Generation)
	}
	// and the farm still works
	a.write("extensions.conf", seedExtensions+"; later\n", 0o644)
	converged(t, "a change after the forgeries", a, b, c, d)
}

// TestSitesRelayHeld: the only dc2 target the origin reaches is held by
// an operator (rollback --hold), so it takes no new generation; it still
// relays: d, behind it, fetches the content through it (the relay fetches
// it once from the source) and gets the change.
func TestSitesRelayHeld(t *testing.T) {
	t.Parallel()
	a, b, d := heldRelaySites(t)
	held := string(b.read("extensions.conf"))
	a.write("sounds/welcome.gsm", string(randBytes(3, 200<<10)), 0o644)
	converged(t, "a change behind a held relay", a, d)
	if got := string(b.read("extensions.conf")); got != held {
		t.Fatalf("the held relay changed: %q", got)
	}
	if _, err := os.Stat(b.path("sounds/welcome.gsm")); err == nil {
		t.Fatal("the held relay took the new file")
	}
	if !b.logHas("fetching content from the source for this site", "path=sounds/welcome.gsm") {
		t.Error("the held relay did not fetch the content for d")
	}
	if v := vias(a); v["d"] != "b" {
		t.Errorf("vias %v, want d via b", v)
	}
}

// TestSitesRelayAltersContent: a hostile relay (a test peer with b's
// identity) hands d a genuine announcement signed by the origin, then
// serves other bytes than the content it names: d refuses them, takes
// nothing into its tree and keeps its good generation.
func TestSitesRelayAltersContent(t *testing.T) {
	t.Parallel()
	a, b, _, d := sitesFarm(t, "")
	startSites(t, a, b, d)
	waitGood(t, d, "conf")
	b.stop()
	before, _ := d.jobStatus("conf")
	g, ok, err := d.a().Store().Latest("conf", store.StateGood)
	if err != nil || !ok {
		t.Fatalf("d has no good generation: %v", err)
	}

	// the origin's genuine announcement of a new file
	content := randBytes(5, 200<<10)
	want := g.Index.Clone()
	want.Set(index.Item{Path: "sounds/new.gsm", Kind: index.KindFile, Mode: 0o644, Size: int64(len(content)), MTime: 1e18, Hash: index.Sum(content)})
	want.Set(index.Item{Path: "sounds", Kind: index.KindDir, Mode: 0o755})
	msg := &wire.Announce{Job: "conf", Version: 1 << 40, Origin: "a", Items: wire.FromIndex(want)}
	env, err := wire.SealRelay(d.a().mon.Codec(), a.id.Certificate.PrivateKey.(ed25519.PrivateKey), "conf", []string{"d"}, msg)
	if err != nil {
		t.Fatal(err)
	}

	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	defer cancel()
	p, err := dialTestPeer(ctx, b, d.addr())
	if err != nil {
		t.Fatal(err)
	}
	defer p.close()
	if err := p.sendMessage(env); err != nil {
		t.Fatal(err)
	}
	go p.drain()
	go p.stall(ctx) // Pings keep the connection up
	// serve every content request with other bytes of the same length
	enc, err := zstd.NewWriter(nil)
	if err != nil {
		t.Fatal(err)
	}
	altered := enc.EncodeAll(randBytes(6, len(content)), nil)
	hash := index.Sum(content)
	served := make(chan struct{}, 64)
	go func() {
		for {
			s, err := p.qc.AcceptStream(ctx)
			if err != nil {
				return
			}
			if _, err := p.codec.Read(s); err != nil {
				s.CancelRead(0)
				continue
			}
			p.codec.Write(s, &wire.Data{Encoding: wire.EncodingZstd, Size: int64(len(altered)), Length: int64(len(content)), Hash: hash[:]})
			s.Write(altered)
			s.Close()
			served <- struct{}{}
		}
	}()
	select {
	case <-served:
	case <-ctx.Done():
		t.Fatal("d never asked the relay for the content")
	}
	eventually(t, waitLimit, "d refuses the altered content", func() error {
		if !d.logHas("fetching from the source failed", "received content hashes to") {
			return fmt.Errorf("not refused yet")
		}
		return nil
	})
	if _, err := os.Stat(d.path("sounds/new.gsm")); err == nil {
		t.Fatal("altered content reached d's tree")
	}
	after, _ := d.jobStatus("conf")
	if after.Generation != before.Generation || string(d.read("extensions.conf")) != seedExtensions {
		t.Fatalf("d's generation went from %d to %d", before.Generation, after.Generation)
	}
}
