package syncer

// End-to-end tests: real agents in this process over real QUIC on
// 127.0.0.1, asserting on the job trees. Each waits with a generous
// deadline (waitLimit); the product's latency target is measured by
// BenchmarkChangeToApplied, not asserted here.

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"pbxsync/internal/config"
	"pbxsync/internal/index"
	"pbxsync/internal/store"
	"pbxsync/internal/wire"
)

const seedExtensions = "[from-internal]\nexten => 100,1,Answer()\n same => n,Hangup()\n"

// TestE2EPushEveryKindOfChange: each kind of change on the source reaches
// the target with the same content, mode and file mtime.
func TestE2EPushEveryKindOfChange(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	a, b := h.pair("")
	a.write("extensions.conf", seedExtensions, 0o644)
	a.write("pjsip.conf", "[transport-udp]\ntype=transport\n", 0o644)
	a.start()
	b.start()
	converged(t, "initial sync", a, b)

	bin := randBytes(1, 64<<10)
	steps := []struct {
		name string
		do   func()
	}{
		{"create a text file", func() { a.write("queues.conf", "[support]\nstrategy=ringall\n", 0o644) }},
		{"modify a text file", func() { a.appendTo("extensions.conf", "exten => 101,1,Dial(PJSIP/101)\n") }},
		{"create a binary file", func() { a.write("sounds/welcome.gsm", string(bin), 0o644) }},
		{"edit one byte of the binary file in place", func() {
			f, err := os.OpenFile(a.path("sounds/welcome.gsm"), os.O_WRONLY, 0)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := f.WriteAt([]byte{^bin[40000]}, 40000); err != nil {
				t.Fatal(err)
			}
			if err := f.Close(); err != nil {
				t.Fatal(err)
			}
		}},
		{"rename a file", func() {
			if err := os.Rename(a.path("queues.conf"), a.path("queues_custom.conf")); err != nil {
				t.Fatal(err)
			}
		}},
		{"delete a file", func() {
			if err := os.Remove(a.path("pjsip.conf")); err != nil {
				t.Fatal(err)
			}
		}},
		{"nested new directories", func() { a.write("a/b/c/d/deep.conf", "deep\n", 0o644) }},
		{"empty file", func() { a.write("extensions_custom.conf", "", 0o644) }},
		{"chmod 640", func() {
			if err := os.Chmod(a.path("extensions.conf"), 0o640); err != nil {
				t.Fatal(err)
			}
		}},
		{"delete a directory tree", func() {
			if err := os.RemoveAll(a.path("a")); err != nil {
				t.Fatal(err)
			}
		}},
		{"empty directory", func() {
			if err := os.MkdirAll(a.path("empty/dir"), 0o755); err != nil {
				t.Fatal(err)
			}
		}},
		{"chmod 750 a directory", func() {
			if err := os.Chmod(a.path("empty"), 0o750); err != nil {
				t.Fatal(err)
			}
		}},
		{"rename a directory", func() {
			if err := os.Rename(a.path("sounds"), a.path("sounds-en")); err != nil {
				t.Fatal(err)
			}
		}},
		{"replace a file by a directory", func() {
			if err := os.Remove(a.path("extensions_custom.conf")); err != nil {
				t.Fatal(err)
			}
			a.write("extensions_custom.conf/inner.conf", "inner\n", 0o644)
		}},
		{"a 4 MiB file", func() { a.write("sounds-en/long.wav", string(randBytes(3, 4<<20)), 0o644) }},
	}
	for _, st := range steps {
		st.do()
		converged(t, st.name, a, b)
	}
	// The last step really is on the target (not a vacuous comparison).
	if fi, err := os.Stat(b.path("extensions.conf")); err != nil || fi.Mode().Perm() != 0o640 {
		t.Fatalf("target extensions.conf: %v, %v; want mode 0640", fi, err)
	}
}

// TestE2ETargetCatchesUpAfterRestart: 100 files change while the target is
// down; it converges after it starts again.
func TestE2ETargetCatchesUpAfterRestart(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	a, b := h.pair("")
	for i := range 60 {
		a.write(fmt.Sprintf("d%d/f%02d.conf", i%4, i), fmt.Sprintf("file %d\n", i), 0o644)
	}
	a.start()
	b.start()
	converged(t, "initial sync", a, b)

	b.stop()
	t0 := time.Now()
	for i := range 40 { // modify 40
		a.appendTo(fmt.Sprintf("d%d/f%02d.conf", i%4, i), "changed while b was down\n")
	}
	for i := 40; i < 60; i++ { // delete 20
		if err := os.Remove(a.path(fmt.Sprintf("d%d/f%02d.conf", i%4, i))); err != nil {
			t.Fatal(err)
		}
	}
	for i := range 40 { // create 40, some in a new directory
		a.write(fmt.Sprintf("new%d/n%02d.conf", i%3, i), strings.Repeat(fmt.Sprintf("new %d\n", i), i+1), 0o640)
	}
	// The source has recorded the change before b comes back.
	var checked uint64
	eventually(t, waitLimit, "source records the changes", func() error {
		js, _ := a.jobStatus("conf")
		if js.Generation == checked {
			return fmt.Errorf("generation %d lacks the last new file", checked)
		}
		g, err := a.a().Store().Generation("conf", js.Generation)
		if err != nil {
			return err
		}
		checked = js.Generation
		if !g.Index.Has("new2/n38.conf") {
			return fmt.Errorf("generation %d lacks the last new file", g.Number)
		}
		return nil
	})
	t.Logf("changes recorded after %s", time.Since(t0).Round(time.Millisecond))
	b.start()
	converged(t, "after b restarted", a, b)
	t.Logf("converged after %s", time.Since(t0).Round(time.Millisecond))
}

// TestE2ELocalEditOnTargetIsOverwrittenAndKept: in push mode a local edit
// on a target is replaced by the source's version, and the edited content
// stays in the target's store.
func TestE2ELocalEditOnTargetIsOverwrittenAndKept(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	a, b := h.pair("")
	a.write("extensions.conf", seedExtensions, 0o644)
	a.start()
	b.start()
	converged(t, "initial sync", a, b)

	edited := []byte(seedExtensions + "exten => 666,1,Dial(SIP/premium-rate)\n")
	b.replace("extensions.conf", edited, 0o644)
	converged(t, "local edit overwritten", a, b)
	if !b.a().Store().Has(index.Sum(edited)) {
		t.Fatal("the target's store does not hold the locally edited content")
	}
	if !b.logHas("local change on a push target") {
		t.Error("the target's log does not report the local change")
	}

	// A local new file goes (and is kept), a local deletion and a local
	// chmod are undone.
	b.replace("local-only.conf", []byte("made on b\n"), 0o644)
	converged(t, "local new file removed", a, b)
	if !b.a().Store().Has(index.Sum([]byte("made on b\n"))) {
		t.Error("the target's store does not hold the removed local file")
	}
	if err := os.Remove(b.path("extensions.conf")); err != nil {
		t.Fatal(err)
	}
	converged(t, "local deletion undone", a, b)
	if err := os.Chmod(b.path("extensions.conf"), 0o600); err != nil {
		t.Fatal(err)
	}
	converged(t, "local chmod undone", a, b)
}

// TestE2ELocalEditWhileTargetDown: a target that was edited while its
// agent was down restores the source's version at start and keeps the
// edit in its store.
func TestE2ELocalEditWhileTargetDown(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	a, b := h.pair("")
	a.write("extensions.conf", seedExtensions, 0o644)
	a.start()
	b.start()
	converged(t, "initial sync", a, b)
	b.stop()
	a.stop() // so that only b's start-up can restore the file
	edited := []byte(seedExtensions + "; edited on b while pbxsync was down\n")
	b.replace("extensions.conf", edited, 0o644)
	b.start()
	converged(t, "restored at start", a, b)
	if !b.a().Store().Has(index.Sum(edited)) {
		t.Error("the target's store does not hold the content edited while it was down")
	}
}

// TestE2ESourceRestart: changes made on the source while its agent was
// down reach the target once it runs again; the source's generation
// numbers go on from where they were.
func TestE2ESourceRestart(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	a, b := h.pair("")
	a.write("extensions.conf", seedExtensions, 0o644)
	a.start()
	b.start()
	converged(t, "initial sync", a, b)
	js, _ := a.jobStatus("conf")
	before := js.Generation
	a.stop()
	a.appendTo("extensions.conf", "exten => 104,1,Hangup()\n")
	a.write("while-down.conf", "x\n", 0o644)
	a.start()
	converged(t, "changes made while the source was down", a, b)
	js, _ = a.jobStatus("conf")
	if js.Generation <= before {
		t.Errorf("source generation %d after restart with changes; was %d", js.Generation, before)
	}
	// and it goes on working
	a.restart()
	a.appendTo("extensions.conf", "exten => 105,1,Hangup()\n")
	converged(t, "a change after a plain restart", a, b)
}

// TestE2EPinning: a node that pins the wrong ID for the source, and a node
// that the source does not pin, get nothing; the logs say why. A correctly
// configured third node shows that the source was pushing meanwhile.
func TestE2EPinning(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	a, b, c, d := h.node("a"), h.node("b"), h.node("c"), h.node("d")
	stranger := h.node("stranger") // only its identity is used
	// a pins b and c; b pins a's address under stranger's ID; c is good;
	// d pins a correctly but a does not know d.
	a.pin(b, c)
	b.Peers = []tpeer{{Name: "a", Address: a.addr(), ID: stranger.id.ID}}
	c.pin(a)
	d.pin(a)
	a.Jobs = []tjob{{Name: "conf", Source: "a", Targets: []string{"b", "c"}}}
	b.Jobs = []tjob{{Name: "conf", Source: "a", Targets: []string{"b"}}}
	c.Jobs = []tjob{{Name: "conf", Source: "a", Targets: []string{"c"}}}
	d.Jobs = []tjob{{Name: "conf", Source: "a", Targets: []string{"d"}}}
	a.write("extensions.conf", seedExtensions, 0o644)
	a.write("sip.conf", "[general]\n", 0o644)
	for _, n := range []*tnode{a, b, c, d} {
		n.start()
	}
	converged(t, "the correctly pinned node syncs", a, c)
	a.appendTo("extensions.conf", "exten => 102,1,Hangup()\n")
	converged(t, "the correctly pinned node syncs a change", a, c)

	eventually(t, waitLimit, "refusals are logged", func() error {
		var missing []string
		// b's dialer: a presents an ID b does not pin for it.
		if !b.logHas("cannot connect to peer", "peer=a", "config pins "+stranger.id.ID.String()) {
			missing = append(missing, "b: dial refusal naming the pinned ID")
		}
		// b's listener: a's real ID is pinned by no [[peer]] of b.
		if !b.logHas("refusing connection from unknown node", "presented_id="+a.id.ID.String()) {
			missing = append(missing, "b: inbound refusal naming a's ID")
		}
		// a's listener: d is not pinned.
		if !a.logHas("refusing connection from unknown node", "presented_id="+d.id.ID.String()) {
			missing = append(missing, "a: inbound refusal naming d's ID")
		}
		// d: a refuses d's certificate (TLS 1.3: after d's side of the
		// handshake is done, so d sees it as a lost connection).
		if !d.logHas("peer=a", "bad certificate") {
			missing = append(missing, "d: a's refusal of its certificate")
		}
		if len(missing) > 0 {
			return fmt.Errorf("missing: %s", strings.Join(missing, "; "))
		}
		return nil
	})
	for _, n := range []*tnode{b, d} {
		snap, err := snapshot(n.tree)
		if err != nil {
			t.Fatal(err)
		}
		if len(snap) != 0 {
			t.Errorf("%s got files although it is not properly pinned: %v", n.name, keys(snap))
		}
		for _, p := range n.a().Status().Peers {
			if p.Connected {
				t.Errorf("%s: peer %s is connected", n.name, p.Name)
			}
		}
	}
	for _, p := range a.a().Status().Peers {
		if p.Name == "b" && p.Connected {
			t.Error("a: b is connected although b pins a wrong ID for a")
		}
	}
}

func keys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	return out
}

// TestE2EAnnounceFromNonSourceIsRefused: c is a pinned peer of b and
// claims (in its own config) to be the source of job "conf"; b's config
// says the source is a. b applies a's tree and nothing of c's.
func TestE2EAnnounceFromNonSourceIsRefused(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	a, b, c := h.node("a"), h.node("b"), h.node("c")
	a.pin(b)
	b.pin(a, c)
	c.pin(b)
	a.Jobs = []tjob{{Name: "conf", Source: "a", Targets: []string{"b"}}}
	b.Jobs = []tjob{{Name: "conf", Source: "a", Targets: []string{"b"}}}
	c.Jobs = []tjob{{Name: "conf", Source: "c", Targets: []string{"b"}}}
	a.write("extensions.conf", seedExtensions, 0o644)
	c.write("extensions.conf", "[from-internal]\nexten => _X.,1,Dial(SIP/fraud/${EXTEN})\n", 0o644)
	c.write("evil.conf", "owned\n", 0o644)
	a.start()
	b.start()
	converged(t, "a's tree on b", a, b)
	c.start()
	// c's first message of the job may be an offer (sent while its scan
	// stores content) or its announcement; b logs the first refusal of a
	// peer's messages and counts the rest
	eventually(t, waitLimit, "b refuses c's messages of the job", func() error {
		if !b.logHas("refusing a message from peer unread", "peer=c", "does not name c as") {
			return fmt.Errorf("no refusal of c in b's log")
		}
		return nil
	})
	// c keeps announcing while it waits for an answer; a change by c
	// must not get through either.
	c.appendTo("extensions.conf", "exten => 999,1,Dial(SIP/fraud2)\n")
	a.appendTo("extensions.conf", "exten => 103,1,Hangup()\n")
	converged(t, "a's change on b", a, b)
	if _, err := os.Stat(b.path("evil.conf")); err == nil {
		t.Fatal("b applied a file announced by c")
	}
	if err := diffTrees(a.tree, b.tree); err != nil {
		t.Fatal(err)
	}
	// c may not fetch content from b either, and b records nothing from c.
	gens, err := b.a().Store().Generations("conf")
	if err != nil {
		t.Fatal(err)
	}
	for _, g := range gens {
		if g.Origin != "a" {
			t.Errorf("b has generation %d from %q", g.Number, g.Origin)
		}
	}
}

// TestE2EFailedCheckRollsBack: a change that fails its check is rolled back
// on the target byte-exact, marked bad there with the reason, reported to
// the source; a later good change applies again.
func TestE2EFailedCheckRollsBack(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	a, b := h.pair("[[job.rule]]\nmatch = [\"*.conf\"]\ncheck = \"! grep -q BROKEN extensions.conf\"\n")
	a.write("extensions.conf", seedExtensions, 0o644)
	a.start()
	b.start()
	converged(t, "initial sync", a, b)
	a.appendTo("extensions.conf", "exten => 101,1,Dial(PJSIP/101)\n")
	converged(t, "a good change", a, b)
	good := b.read("extensions.conf")
	goodInfo, err := os.Stat(b.path("extensions.conf"))
	if err != nil {
		t.Fatal(err)
	}

	// One atomic change of content and mode, so that it is one generation.
	a.replace("extensions.conf", append(bytes.Clone(good), "exten => 102,1,BROKEN\n"...), 0o600)
	eventually(t, waitLimit, "the target marks a generation bad", func() error {
		gens, err := b.a().Store().Generations("conf")
		if err != nil {
			return err
		}
		for _, g := range gens {
			if g.State == store.StateBad {
				if !strings.Contains(g.Reason, "check") || !strings.Contains(g.Reason, "BROKEN") {
					return fmt.Errorf("generation %d is bad with reason %q; want it to name the check", g.Number, g.Reason)
				}
				return nil
			}
		}
		return fmt.Errorf("no bad generation in %+v", gens)
	})
	eventually(t, waitLimit, "the source reports the target's rejection", func() error {
		js, _ := a.jobStatus("conf")
		if js.State != string(store.StateBad) || !strings.Contains(js.LastError, "target b") {
			return fmt.Errorf("source job status: state %q, last_error %q", js.State, js.LastError)
		}
		return nil
	})
	now, err := os.ReadFile(b.path("extensions.conf"))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(now, good) {
		t.Fatalf("after the rollback the target holds\n%s\nwant\n%s", now, good)
	}
	nowInfo, err := os.Stat(b.path("extensions.conf"))
	if err != nil {
		t.Fatal(err)
	}
	if nowInfo.Mode() != goodInfo.Mode() || !nowInfo.ModTime().Equal(goodInfo.ModTime()) {
		t.Fatalf("after the rollback: mode %v mtime %v; want %v %v", nowInfo.Mode(), nowInfo.ModTime(), goodInfo.Mode(), goodInfo.ModTime())
	}
	js, _ := b.jobStatus("conf")
	if js.State != string(store.StateBad) {
		t.Errorf("target job state %q, want bad", js.State)
	}

	a.replace("extensions.conf", append(bytes.Clone(good), "exten => 103,1,Hangup()\n"...), 0o644)
	converged(t, "a good change after the bad one", a, b)
	eventually(t, waitLimit, "the source sees the target good again", func() error {
		js, _ := a.jobStatus("conf")
		if js.State != string(store.StateGood) {
			return fmt.Errorf("source job state %q (%s)", js.State, js.LastError)
		}
		return nil
	})
}

// TestE2EManualRollbackOnSource: Agent.Rollback on the source brings the
// source and the target back to generation N's content.
func TestE2EManualRollbackOnSource(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	a, b := h.pair("")
	a.write("extensions.conf", seedExtensions, 0o644)
	a.start()
	b.start()
	converged(t, "initial sync", a, b)
	gen := func() uint64 {
		js, _ := a.jobStatus("conf")
		return js.Generation
	}
	n := gen()
	v1 := a.read("extensions.conf")
	a.appendTo("extensions.conf", "exten => 101,1,Hangup()\n")
	a.write("new.conf", "added after N\n", 0o644)
	converged(t, "second version", a, b)
	a.appendTo("extensions.conf", "exten => 102,1,Hangup()\n")
	converged(t, "third version", a, b)
	if gen() <= n {
		t.Fatalf("source generation %d after two changes; started at %d", gen(), n)
	}

	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	defer cancel()
	newGen, err := a.a().Rollback(ctx, "conf", n, false)
	if err != nil {
		t.Fatalf("Rollback to %d: %v", n, err)
	}
	if newGen <= n {
		t.Errorf("Rollback returned generation %d; want a new one above %d", newGen, n)
	}
	converged(t, "rollback reaches the target", a, b)
	if got := b.read("extensions.conf"); !bytes.Equal(got, v1) {
		t.Fatalf("target extensions.conf after rollback:\n%s\nwant\n%s", got, v1)
	}
	if _, err := os.Stat(b.path("new.conf")); !os.IsNotExist(err) {
		t.Fatalf("new.conf, created after generation %d, still on the target: %v", n, err)
	}
}

func randBytes(seed uint64, n int) []byte {
	var key [32]byte
	for i := range 4 {
		binary.LittleEndian.PutUint64(key[8*i:], seed+uint64(i)*0x9e3779b97f4a7c15)
	}
	b := make([]byte, n)
	rand.NewChaCha8(key).Read(b)
	return b
}

// TestE2ERollingStopsAtBadTarget: with order = "rolling" a generation that
// fails its check on the first target never reaches the second; a good
// change afterwards reaches both, in order.
func TestE2ERollingStopsAtBadTarget(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	a, b, c := h.node("a"), h.node("b"), h.node("c")
	a.pin(b, c)
	b.pin(a)
	c.pin(a)
	targets := []string{"b", "c"}
	a.Jobs = []tjob{{Name: "conf", Source: "a", Targets: targets, Extra: "order = \"rolling\"\n"}}
	// Only b checks for BROKEN; c would take it.
	b.Jobs = []tjob{{Name: "conf", Source: "a", Targets: []string{"b"}, Extra: "[[job.rule]]\nmatch = [\"*.conf\"]\ncheck = \"! grep -q BROKEN extensions.conf\"\n"}}
	c.Jobs = []tjob{{Name: "conf", Source: "a", Targets: []string{"c"}}}
	a.write("extensions.conf", seedExtensions, 0o644)
	a.start()
	b.start()
	c.start()
	converged(t, "initial sync", a, b, c)
	good := a.read("extensions.conf")

	a.replace("extensions.conf", append(bytes.Clone(good), "exten => 1,1,BROKEN\n"...), 0o644)
	var badVersion uint64
	eventually(t, waitLimit, "b rejects the change", func() error {
		js, _ := a.jobStatus("conf")
		for _, ts := range js.Targets {
			if ts.Name == "b" && ts.State == "bad" {
				badVersion = ts.Version
				return nil
			}
		}
		return fmt.Errorf("source status: %+v", js)
	})
	if got := c.read("extensions.conf"); !bytes.Equal(got, good) {
		t.Fatalf("c got the generation that b rejected:\n%s", got)
	}
	a.replace("extensions.conf", append(bytes.Clone(good), "exten => 2,1,Hangup()\n"...), 0o644)
	converged(t, "a good change after the rejected one", a, b, c)
	gens, err := c.a().Store().Generations("conf")
	if err != nil {
		t.Fatal(err)
	}
	for _, g := range gens {
		if g.SourceVersion == badVersion {
			t.Errorf("c recorded source version %d, which b rejected: %+v", badVersion, g)
		}
	}
}

// TestE2EContentOnlyForTargets: a pinned peer that is not a target of the
// job asks the source for content by hash and is refused.
func TestE2EContentOnlyForTargets(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	a, b := h.pair("")
	e := h.node("e")
	a.pin(e) // e may connect, but it is not a target of "conf"
	e.pin(a)
	e.Jobs = []tjob{{Name: "conf", Source: "a", Targets: []string{"e"}}}
	secret := seedExtensions + "; a secret only targets may read\n"
	a.write("extensions.conf", secret, 0o644)
	a.start()
	b.start()
	e.start()
	converged(t, "initial sync", a, b)
	eventually(t, waitLimit, "e connected to a", func() error {
		if !e.a().mon.Connected("a") {
			return fmt.Errorf("not connected")
		}
		return nil
	})
	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	defer cancel()
	s, err := e.a().mon.OpenStream(ctx, "a")
	if err != nil {
		t.Fatal(err)
	}
	defer s.Abort()
	s.SetDeadline(time.Now().Add(waitLimit))
	hash := index.Sum([]byte(secret))
	if err := s.WriteMessage(&wire.Get{Job: "conf", Path: "extensions.conf", Hash: hash[:]}); err != nil {
		t.Fatal(err)
	}
	s.Close()
	m, err := s.ReadMessage()
	if err != nil {
		t.Fatal(err)
	}
	if em, ok := m.(*wire.Error); !ok || !strings.Contains(em.Message, "not a target") {
		t.Fatalf("answer to a Get from a non-target: %#v", m)
	}
	if snap, _ := snapshot(e.tree); len(snap) != 0 {
		t.Fatalf("e got files: %v", keys(snap))
	}
	eventually(t, waitLimit, "a logs the refusal", func() error {
		// the first refused message of e is logged, the rest counted: it
		// is the Get unless e, a target in its own config, sent the job
		// another message first
		if !a.logHas("refusing a message from peer unread", "peer=e", `job \"conf\"`) {
			return fmt.Errorf("no refusal in a's log")
		}
		return nil
	})
}

// TestE2ETwoJobsOppositeDirections: a pushes "conf" to b while b pushes
// "sounds" to a; each job keeps to its own tree.
func TestE2ETwoJobsOppositeDirections(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	a, b := h.node("a"), h.node("b")
	a.pin(b)
	b.pin(a)
	conf := func(n *tnode) tjob {
		return tjob{Name: "conf", Path: n.tree + "/conf", Source: "a", Targets: []string{"b"}}
	}
	sounds := func(n *tnode) tjob {
		return tjob{Name: "sounds", Path: n.tree + "/sounds", Source: "b", Targets: []string{"a"}}
	}
	a.Jobs = []tjob{conf(a), sounds(a)}
	b.Jobs = []tjob{conf(b), sounds(b)}
	a.write("conf/extensions.conf", seedExtensions, 0o644)
	b.write("sounds/custom/welcome.gsm", string(randBytes(5, 33000)), 0o644)
	a.start()
	b.start()
	converged(t, "both jobs", a, b)
	a.appendTo("conf/extensions.conf", "exten => 106,1,Hangup()\n")
	b.write("sounds/custom/bye.gsm", string(randBytes(6, 12000)), 0o644)
	converged(t, "a change in each direction", a, b)
	for _, n := range []*tnode{a, b} {
		for _, name := range []string{"conf", "sounds"} {
			waitGood(t, n, name)
		}
	}
}

// TestE2ELocalEditRacingAnAnnounceIsKept: a local edit on a target that
// the watcher has not reported yet (here: a long debounce on b) when the
// source's change to the same file arrives must still be kept in the
// target's store, like every other overwritten local edit.
func TestE2ELocalEditRacingAnAnnounceIsKept(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	a, b := h.pair("")
	b.Jobs[0].Extra = "debounce = \"3s\"\n"
	a.write("extensions.conf", seedExtensions, 0o644)
	a.start()
	b.start()
	converged(t, "initial sync", a, b)
	waitGood(t, b, "conf") // b has rescanned what it wrote
	edited := []byte(seedExtensions + "exten => 666,1,Dial(SIP/premium-rate)\n")
	b.replace("extensions.conf", edited, 0o644)
	a.appendTo("extensions.conf", "exten => 107,1,Hangup()\n")
	converged(t, "the source's change", a, b)
	if !b.a().Store().Has(index.Sum(edited)) {
		t.Fatal("a local edit overwritten by an incoming change is lost: the target's store does not hold it")
	}
}

// TestE2EFirstSyncRacingALocalEdit: a target whose file changes between its
// scan and the first announcement (the watcher has not reported it yet)
// must still converge; the apply error says "will retry".
func TestE2EFirstSyncRacingALocalEdit(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	a, b := h.pair("")
	b.Jobs[0].Extra = "debounce = \"3s\"\n"
	a.write("extensions.conf", seedExtensions, 0o644)
	b.write("extensions.conf", "; b's own file, version 1\n", 0o644)
	b.start()
	eventually(t, waitLimit, "b scanned its tree", func() error {
		if js, _ := b.jobStatus("conf"); js.State != "waiting" {
			return fmt.Errorf("b job state %q", js.State)
		}
		return nil
	})
	// a target waiting for its first generation is healthy (a disk
	// without room for one is not: TestFaultDiskFull)
	if err := b.a().Healthy(t.Context()); err != nil {
		t.Fatalf("b waiting for its first generation is unhealthy: %v", err)
	}
	b.replace("extensions.conf", []byte("; b's own file, version 2\n"), 0o644)
	a.start()
	converged(t, "first sync", a, b)
}

// TestE2EInterruptedApplyBeforeJournal: a target crashed after it recorded
// a generation as "applying" but before it wrote the intent journal, so
// its tree still holds the previous generation. At start-up it must not
// run the checks against the old tree, mark the new generation good and
// then write the new content unchecked.
func TestE2EInterruptedApplyBeforeJournal(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	a, b := h.pair("[[job.rule]]\nmatch = [\"*.conf\"]\ncheck = \"! grep -q BROKEN extensions.conf\"\n")
	a.write("extensions.conf", seedExtensions, 0o644)
	a.start()
	b.start()
	converged(t, "initial sync", a, b)
	waitGood(t, b, "conf")
	a.stop()
	b.stop()
	good := b.read("extensions.conf")

	// What a crash between AddGeneration and WriteJournal leaves: the new
	// content fetched into the store, the generation recorded as applying,
	// no journal, the tree untouched.
	st, err := store.Open(b.data+"/store", nil)
	if err != nil {
		t.Fatal(err)
	}
	prev, ok, err := st.Latest("conf", store.StateGood)
	if err != nil || !ok {
		t.Fatalf("b has no good generation: %v", err)
	}
	broken := append(bytes.Clone(good), "exten => 1,1,BROKEN\n"...)
	hash, size, err := st.PutReader(context.Background(), bytes.NewReader(broken))
	if err != nil {
		t.Fatal(err)
	}
	want := prev.Index.Clone()
	it, _ := want.Get("extensions.conf")
	it.Hash, it.Size, it.MTime = hash, size, it.MTime+int64(time.Second)
	want.Set(it)
	g := &store.Generation{Job: "conf", Time: time.Now(), Origin: "a", SourceVersion: 99,
		Changed: []string{"extensions.conf"}, State: store.StateApplying, Index: want}
	n, err := st.AddGeneration(context.Background(), g)
	if err != nil {
		t.Fatal(err)
	}
	st.Close()

	b.start() // a stays down: only b's start-up decides
	eventually(t, waitLimit, "b settles", func() error {
		gens, err := b.a().Store().Generations("conf")
		if err != nil {
			return err
		}
		for _, gi := range gens {
			if gi.Number == n && gi.State == store.StateApplying {
				return fmt.Errorf("generation %d still applying", n)
			}
		}
		return nil
	})
	// Settled; any restore at start-up has been done by now (it runs in the
	// job's start-up, before the loop that serves the status).
	b.stop()
	if got := b.read("extensions.conf"); !bytes.Equal(got, good) {
		t.Errorf("after start-up the target holds content that never passed its check:\n%s", got)
	}
	gens, err := func() ([]store.GenerationInfo, error) {
		st, err := store.OpenReadOnly(b.data+"/store", nil)
		if err != nil {
			return nil, err
		}
		defer st.Close()
		return st.Generations("conf")
	}()
	if err != nil {
		t.Fatal(err)
	}
	for _, gi := range gens {
		if gi.Number == n && gi.State == store.StateGood {
			t.Errorf("generation %d (BROKEN, never checked) is marked good", n)
		}
	}
}

// waitGood waits until n's job name is in state good: its tree holding the
// source's files does not mean the checks have passed yet.
func waitGood(tb testing.TB, n *tnode, name string) {
	tb.Helper()
	eventually(tb, waitLimit, n.name+" job "+name+" good", func() error {
		if js, _ := n.jobStatus(name); js.State != string(store.StateGood) {
			return fmt.Errorf("state %q (%s)", js.State, js.LastError)
		}
		return nil
	})
}

// TestE2EShutdownDuringCheck: stopping a target while a check runs is not
// a failed check: the generation must not be marked bad for good, and the
// target converges after it starts again.
func TestE2EShutdownDuringCheck(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	a, b := h.node("a"), h.node("b")
	a.pin(b)
	b.pin(a)
	marker := filepath.Join(b.data, "check-started")
	a.Jobs = []tjob{{Name: "conf", Source: "a", Targets: []string{"b"}}}
	b.Jobs = []tjob{{Name: "conf", Source: "a", Targets: []string{"b"},
		Extra: fmt.Sprintf("check = \"touch %s; sleep 1\"\n", marker)}}
	a.write("extensions.conf", seedExtensions, 0o644)
	a.start()
	b.start()
	eventually(t, waitLimit, "b's check started", func() error {
		_, err := os.Stat(marker)
		return err
	})
	b.stop() // as SIGTERM would, while the check runs
	b.start()
	converged(t, "after the restart", a, b)
	waitGood(t, b, "conf")
	gens, err := b.a().Store().Generations("conf")
	if err != nil {
		t.Fatal(err)
	}
	for _, g := range gens {
		if g.State == store.StateBad {
			t.Errorf("generation %d marked bad by a shutdown: %s", g.Number, g.Reason)
		}
	}
}

// TestE2EWipedTargetResyncs: a target that comes back with an empty store
// and tree (reinstalled, same identity) gets the source's current
// generation without waiting for the next change on the source.
func TestE2EWipedTargetResyncs(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	a, b := h.pair("")
	a.write("extensions.conf", seedExtensions, 0o644)
	a.start()
	b.start()
	converged(t, "initial sync", a, b)
	waitGood(t, b, "conf")
	eventually(t, waitLimit, "the source knows b is good", func() error {
		js, _ := a.jobStatus("conf")
		if len(js.Targets) != 1 || js.Targets[0].State != "good" {
			return fmt.Errorf("targets %+v", js.Targets)
		}
		return nil
	})
	b.stop()
	for _, p := range []string{filepath.Join(b.data, "store"), filepath.Join(b.data, "staging"), b.tree} {
		if err := os.RemoveAll(p); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.MkdirAll(b.tree, 0o755); err != nil {
		t.Fatal(err)
	}
	b.start()
	converged(t, "the wiped target", a, b)
}

// TestE2ERefusedNodeNeverSeesPeerUp: a node whose certificate the peer
// refuses (it is not pinned there) must not report that peer as up: with
// TLS 1.3 the client's handshake completes before the server checks the
// client certificate, so the dialer must wait for proof that the server
// accepted it (a first frame from it) before it calls the peer up. Every
// "peer up" of a refused connection reaches the jobs and the on_peer_up
// hooks (grace 0 by default), once per reconnect.
func TestE2ERefusedNodeNeverSeesPeerUp(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	a, d := h.node("a"), h.node("d")
	x := h.node("x") // a's only peer and target; never started
	a.pin(x)
	d.pin(a)
	a.Jobs = []tjob{{Name: "conf", Source: "a", Targets: []string{"x"}}}
	d.Jobs = []tjob{{Name: "conf", Source: "a", Targets: []string{"d"}}}
	a.write("extensions.conf", seedExtensions, 0o644)
	a.start()
	d.start()
	eventually(t, waitLimit, "a refuses d", func() error {
		if !a.logHas("refusing connection from unknown node", "presented_id="+d.id.ID.String()) {
			return fmt.Errorf("no refusal in a's log")
		}
		if !d.logHas("peer=a", "bad certificate") {
			return fmt.Errorf("no refusal in d's log")
		}
		return nil
	})
	if d.logHas("peer up", "peer=a") {
		t.Error("d reported a, which refuses its certificate, as up")
	}
}

// TestE2ESymlinkOnTargetIsNotFollowed: a directory on the target that is a
// symlink to somewhere outside the job root, where the source has a real
// directory, is never written through: the link itself is replaced by a
// real directory (as rsync does without --keep-dirlinks), its target is
// kept in the store, nothing outside the root changes, and the job keeps
// syncing.
func TestE2ESymlinkOnTargetIsNotFollowed(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	a, b := h.pair("")
	outside := filepath.Join(h.base, "outside")
	if err := os.MkdirAll(outside, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(outside, b.path("sounds")); err != nil {
		t.Fatal(err)
	}
	a.write("extensions.conf", seedExtensions, 0o644)
	a.start()
	b.start()
	converged(t, "initial sync (b's symlink is not part of the job)", a, b)
	a.write("sounds/evil.gsm", "written through a symlink?\n", 0o644)
	converged(t, "b replaces its symlink by the source's directory", a, b)
	ents, err := os.ReadDir(outside)
	if err != nil {
		t.Fatal(err)
	}
	if len(ents) != 0 {
		t.Fatalf("b wrote outside its job root: %v", ents)
	}
	if fi, err := os.Lstat(b.path("sounds")); err != nil || !fi.IsDir() {
		t.Fatalf("b's sounds is not a real directory: %v %v", fi, err)
	}
	xs, err := b.a().store.Extras("conf")
	if err != nil {
		t.Fatal(err)
	}
	kept := false
	for _, x := range xs {
		kept = kept || strings.Contains(x.Label, "symlink sounds -> "+outside)
	}
	if !kept || !b.logHas("replacing a local symlink", "sounds") {
		t.Errorf("the replaced link is not kept or not logged: %+v", xs)
	}
	a.write("later.conf", "later\n", 0o644)
	converged(t, "the job keeps syncing", a, b)
}

// TestE2EReplacedSymlinkComesBackOnRollback: when the generation that
// replaced a target's local symlink by the source's directory fails its
// check, the rollback puts the link back (same target, nothing outside the
// root touched); the link is recorded with that generation; and the job
// keeps syncing once the source fixes the change.
func TestE2EReplacedSymlinkComesBackOnRollback(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	a, b := h.pair("[[job.rule]]\nmatch = [\"*.gsm\"]\ncheck = \"! test -e sounds/BROKEN.gsm\"\n")
	outside := filepath.Join(h.base, "outside")
	if err := os.MkdirAll(outside, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(outside, "mine.gsm"), []byte("not the job's\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(outside, b.path("sounds")); err != nil {
		t.Fatal(err)
	}
	a.write("extensions.conf", seedExtensions, 0o644)
	a.start()
	b.start()
	converged(t, "initial sync (b's symlink is not part of the job)", a, b)

	a.write("sounds/BROKEN.gsm", "fails the check\n", 0o644)
	var bad store.GenerationInfo
	eventually(t, waitLimit, "b marks the generation that replaced its link bad", func() error {
		gens, err := b.a().Store().Generations("conf")
		if err != nil {
			return err
		}
		for _, g := range gens {
			if g.State == store.StateBad {
				bad = g
				return nil
			}
		}
		return fmt.Errorf("no bad generation in %+v", gens)
	})
	if len(bad.Links) != 1 || bad.Links[0] != (store.Link{Path: "sounds", Target: outside}) {
		t.Errorf("bad generation %d records links %+v; want sounds -> %s", bad.Number, bad.Links, outside)
	}
	eventually(t, waitLimit, "b's link is back", func() error {
		got, err := os.Readlink(b.path("sounds"))
		if err != nil {
			return err
		}
		if got != outside {
			return fmt.Errorf("sounds -> %s; want -> %s", got, outside)
		}
		return nil
	})
	ents, err := os.ReadDir(outside)
	if err != nil {
		t.Fatal(err)
	}
	if len(ents) != 1 || ents[0].Name() != "mine.gsm" {
		t.Fatalf("the directory outside the root changed: %v", ents)
	}

	if err := os.Remove(a.path("sounds/BROKEN.gsm")); err != nil {
		t.Fatal(err)
	}
	a.write("sounds/good.gsm", "passes the check\n", 0o644)
	converged(t, "the fixed change replaces the link again and the job syncs", a, b)
	if fi, err := os.Lstat(b.path("sounds")); err != nil || !fi.IsDir() {
		t.Fatalf("b's sounds is not a real directory after the good generation: %v %v", fi, err)
	}
}

// reload parses n's current config and hands it to the running agent.
func (n *tnode) reload(t *testing.T) {
	t.Helper()
	cfg, err := config.Parse(filepath.Join(n.h.base, n.name, "pbxsync.toml"), []byte(n.configText()))
	if err != nil {
		t.Fatal(err)
	}
	if err := n.a().Reload(cfg); err != nil {
		t.Fatalf("reload %s: %v", n.name, err)
	}
}

// TestE2EReloadChangesTargets: a configuration reload on the source adds a
// target (which then gets the current tree) and removes one (which gets
// no further changes), without a restart.
func TestE2EReloadChangesTargets(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	a, b, c := h.node("a"), h.node("b"), h.node("c")
	a.pin(b, c)
	b.pin(a)
	c.pin(a)
	a.Jobs = []tjob{{Name: "conf", Source: "a", Targets: []string{"b"}}}
	b.Jobs = []tjob{{Name: "conf", Source: "a", Targets: []string{"b"}}}
	c.Jobs = []tjob{{Name: "conf", Source: "a", Targets: []string{"c"}}}
	a.write("extensions.conf", seedExtensions, 0o644)
	a.start()
	b.start()
	c.start()
	converged(t, "b", a, b)

	a.Jobs[0].Targets = []string{"b", "c"}
	a.reload(t)
	converged(t, "c, added by a reload", a, b, c)

	a.Jobs[0].Targets = []string{"c"}
	a.reload(t)
	a.appendTo("extensions.conf", "exten => 108,1,Hangup()\n")
	converged(t, "a change after b was removed", a, c)
	js, _ := a.jobStatus("conf")
	gens, err := b.a().Store().Generations("conf")
	if err != nil {
		t.Fatal(err)
	}
	for _, g := range gens {
		if g.SourceVersion >= js.Generation {
			t.Errorf("b, no longer a target, applied source generation %d", g.SourceVersion)
		}
	}
}

// TestE2EReloadDuringCheck: a reload that restarts a target's job while a
// check runs neither marks the generation bad nor leaves the target behind.
func TestE2EReloadDuringCheck(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	a, b := h.pair("")
	marker := filepath.Join(b.data, "check-started")
	b.Jobs[0].Extra = fmt.Sprintf("check = \"touch %s; sleep 2\"\n", marker)
	a.write("extensions.conf", seedExtensions, 0o644)
	a.start()
	b.start()
	eventually(t, waitLimit, "b's check started", func() error {
		_, err := os.Stat(marker)
		return err
	})
	b.Jobs[0].Extra = "check = \"true\"\n" // the job changes: it restarts
	t0 := time.Now()
	b.reload(t)
	t.Logf("reload took %s", time.Since(t0).Round(time.Millisecond))
	converged(t, "after the reload", a, b)
	waitGood(t, b, "conf")
	gens, err := b.a().Store().Generations("conf")
	if err != nil {
		t.Fatal(err)
	}
	for _, g := range gens {
		if g.State == store.StateBad {
			t.Errorf("generation %d marked bad by a reload: %s", g.Number, g.Reason)
		}
	}
	eventually(t, waitLimit, "the source sees b good", func() error {
		js, _ := a.jobStatus("conf")
		if js.State != string(store.StateGood) || len(js.Targets) != 1 || js.Targets[0].State != "good" {
			return fmt.Errorf("source status %q %q, targets %+v", js.State, js.LastError, js.Targets)
		}
		return nil
	})
}

// TestE2ERollbackAfterRejectedGeneration: after a target rejected the
// source's newest generation, `rollback` on the source (to the previous
// good one) brings the source's tree back and every side reports good.
func TestE2ERollbackAfterRejectedGeneration(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	a, b := h.pair("[[job.rule]]\nmatch = [\"*.conf\"]\ncheck = \"! grep -q BROKEN extensions.conf\"\n")
	a.write("extensions.conf", seedExtensions, 0o644)
	a.start()
	b.start()
	converged(t, "initial sync", a, b)
	waitGood(t, b, "conf")
	good := a.read("extensions.conf")
	a.appendTo("extensions.conf", "exten => 1,1,BROKEN\n")
	var bad uint64
	eventually(t, waitLimit, "the source sees the rejection", func() error {
		js, _ := a.jobStatus("conf")
		if js.State != string(store.StateBad) {
			return fmt.Errorf("source state %q", js.State)
		}
		bad = js.Generation
		return nil
	})
	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	defer cancel()
	if _, err := a.a().Rollback(ctx, "conf", 0, false); err != nil {
		t.Fatalf("rollback: %v", err)
	}
	if got := a.read("extensions.conf"); !bytes.Equal(got, good) {
		t.Fatalf("source after rollback:\n%s", got)
	}
	converged(t, "after the rollback", a, b)
	eventually(t, waitLimit, "both sides good", func() error {
		js, _ := a.jobStatus("conf")
		if js.State != string(store.StateGood) || len(js.Targets) != 1 || js.Targets[0].State != "good" {
			return fmt.Errorf("source status %q %q, targets %+v", js.State, js.LastError, js.Targets)
		}
		return nil
	})
	gens, err := a.a().Store().Generations("conf")
	if err != nil {
		t.Fatal(err)
	}
	for _, g := range gens {
		if g.Number == bad && (g.State != store.StateBad || !strings.Contains(g.Reason, "BROKEN")) {
			t.Errorf("the rejected generation %d reads %q %q after the rollback; history should still say why it was bad", bad, g.State, g.Reason)
		}
	}
}

// TestE2ECatchUpAcrossSmallGenerations: a target that missed several
// small generations of one file (the source sends small changes inline,
// as deltas against its previous generation, which this target never
// had) catches up to the newest content.
func TestE2ECatchUpAcrossSmallGenerations(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	a, b := h.pair("")
	a.write("extensions.conf", seedExtensions, 0o644)
	a.write("sip.conf", "[general]\ncontext=default\n", 0o644)
	a.start()
	b.start()
	converged(t, "initial sync", a, b)
	waitGood(t, b, "conf")
	b.stop()
	for i := range 3 {
		js, _ := a.jobStatus("conf")
		a.appendTo("extensions.conf", fmt.Sprintf("exten => %d,1,Hangup()\n", 200+i))
		a.appendTo("sip.conf", fmt.Sprintf("; edit %d\n", i))
		eventually(t, waitLimit, "a new generation on the source", func() error {
			if now, _ := a.jobStatus("conf"); now.Generation == js.Generation {
				return fmt.Errorf("still generation %d", now.Generation)
			}
			return nil
		})
	}
	b.start()
	converged(t, "after missing three generations", a, b)
	waitGood(t, b, "conf")
	// and the next small change, inline against a generation b now has
	a.appendTo("extensions.conf", "exten => 299,1,Hangup()\n")
	converged(t, "the next change", a, b)
}

// TestE2ESpecialModeBits: setgid and sticky directories arrive with those
// bits (an Asterisk spool directory is often 2775); a setuid file arrives
// without it unless the target's job sets preserve_suid, and the target
// logs the drop.
func TestE2ESpecialModeBits(t *testing.T) {
	t.Parallel()
	for _, preserve := range []bool{false, true} {
		t.Run(fmt.Sprintf("preserve_suid=%v", preserve), func(t *testing.T) {
			t.Parallel()
			h := newHarness(t)
			a, b := h.pair("")
			if preserve {
				b.Jobs[0].Extra = "preserve_suid = true\n"
			}
			a.write("spool/voicemail/msg.txt", "hello", 0o644)
			a.write("bin/agi.sh", "#!/bin/sh\n", 0o755)
			a.start()
			b.start()
			converged(t, "initial sync", a, b)
			suid := 0o755 | os.ModeSetuid
			if !preserve {
				suid = 0o755
			}
			for _, c := range []struct {
				rel        string
				mode, want os.FileMode
			}{
				{"spool", 0o775 | os.ModeSetgid, 0o775 | os.ModeSetgid},
				{"spool/voicemail", 0o777 | os.ModeSticky, 0o777 | os.ModeSticky},
				{"bin/agi.sh", 0o755 | os.ModeSetuid, suid},
			} {
				if err := os.Chmod(a.path(c.rel), c.mode); err != nil {
					t.Fatal(err)
				}
				eventually(t, waitLimit, c.rel+" mode", func() error {
					st, err := os.Stat(b.path(c.rel))
					if err != nil {
						return err
					}
					if got := st.Mode() & (os.ModePerm | os.ModeSetuid | os.ModeSetgid | os.ModeSticky); got != c.want {
						return fmt.Errorf("%s on b is %v, want %v", c.rel, got, c.want)
					}
					return nil
				})
			}
			if !preserve {
				eventually(t, waitLimit, "b logs the dropped bits", func() error {
					if !b.logHas("dropping setuid/setgid bits", "bin/agi.sh") {
						return fmt.Errorf("not logged")
					}
					return nil
				})
				a.write("later.conf", "x", 0o644)
				eventually(t, waitLimit, "a later change syncs", func() error {
					_, err := os.Stat(b.path("later.conf"))
					return err
				})
				if st, err := os.Stat(b.path("bin/agi.sh")); err != nil || st.Mode()&os.ModeSetuid != 0 {
					t.Errorf("bin/agi.sh on b: %v %v, want no setuid bit", st.Mode(), err)
				}
			} else if b.logHas("dropping setuid/setgid bits") {
				t.Error("setuid bits dropped although the job preserves them")
			}
		})
	}
}

// configReadingCheck is an AfterApply that, once cancelled, reads the
// agent's configuration before it returns, as a job's step does when a
// reload stops it midway (an announcement planning its routes reads the
// sites of the peers).
type configReadingCheck struct {
	agent   func() *Agent
	entered chan struct{}
	once    sync.Once
}

func (c *configReadingCheck) AfterApply(ctx context.Context, _ *config.Job, _ uint64, _ []string) error {
	first := false
	c.once.Do(func() { first = true; close(c.entered) })
	if !first {
		return nil
	}
	<-ctx.Done() // the reload stops this job
	_ = c.agent().cfgSnapshot()
	return ctx.Err()
}

// TestE2EReloadStopsAJobThatReadsTheConfig: a reload that replaces a job
// whose step reads the agent's configuration while it stops returns, and
// the new job converges (the reload once waited for the old job while
// holding the lock that step needed).
func TestE2EReloadStopsAJobThatReadsTheConfig(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	a, b := h.pair("")
	check := &configReadingCheck{agent: b.a, entered: make(chan struct{})}
	b.tune = func(o *Options) { o.AfterApply = check }
	a.write("extensions.conf", seedExtensions, 0o644)
	a.start()
	b.start()
	select {
	case <-check.entered:
	case <-time.After(waitLimit):
		t.Fatal("b never ran its checks")
	}
	b.Jobs[0].Extra = "keep = 7\n" // the job changes: it restarts
	cfg, err := config.Parse(filepath.Join(b.h.base, b.name, "pbxsync.toml"), []byte(b.configText()))
	if err != nil {
		t.Fatal(err)
	}
	agent := b.a()
	done := make(chan error, 1)
	go func() { done <- agent.Reload(cfg) }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("reload: %v", err)
		}
	case <-time.After(waitLimit):
		t.Fatalf("reload did not return within %s: it waits for the old job under the lock the job needs", waitLimit)
	}
	converged(t, "after the reload", a, b)
}
