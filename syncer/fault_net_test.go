package syncer

// Network faults (issue 10): a stalled peer and a hostile pinned peer.
// After each: no file outside the job roots changed, no file on a target
// was lost that the source still has, and the job converges once the fault
// is gone.

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	mrand "math/rand/v2"
	"os"
	"path/filepath"
	"testing"
	"time"

	"pbxsync/internal/wire"
)

func randomText(n int) string {
	b := make([]byte, n/2)
	rand.Read(b)
	return fmt.Sprintf("%x", b)
}

// TestFaultStalledTarget: a pinned target that stops reading its control
// stream never holds up the healthy target: while the stalled one has read
// nothing, the healthy one applies every generation; the stalled one is
// reported slow, then disconnected, and once a real agent takes its place
// the job converges everywhere.
func TestFaultStalledTarget(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	a, b, s := h.node("a"), h.node("b"), h.node("s")
	a.pin(b, s)
	b.pin(a)
	s.pin(a)
	j := tjob{Name: "conf", Source: "a", Targets: []string{"b", "s"}}
	a.Jobs, b.Jobs, s.Jobs = []tjob{j}, []tjob{j}, []tjob{j}
	// The disconnect of a stalled peer must not come before the test has
	// shown b unaffected, however slow the machine: the stall limit is the
	// test's wait limit (scaled under -race and by PBXSYNC_TEST_WAIT_SCALE).
	a.tune = func(o *Options) { o.StallAfter = waitLimit }
	guard := newOutsideGuard(t, h)
	a.write("x.conf", "v0\n", 0o644)
	a.start()
	b.start()
	converged(t, "initial sync", a, b)
	afterFault := faultCheck(t, guard, a, b)

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	p, err := dialTestPeer(ctx, s, a.addr())
	if err != nil {
		t.Fatal(err)
	}
	defer p.close()
	go p.stall(ctx)

	// Each generation changes 8 files of 60 KB of random text: about 250
	// KB of inline content per announcement, so the stalled peer's QUIC
	// window and then its send queue fill within a few generations. Once a
	// reports s slow (its queue is full), b must still apply two more
	// generations while s stays connected and reads nothing.
	slow := func() bool {
		js, _ := a.jobStatus("conf")
		for _, ts := range js.Targets {
			if ts.Name == "s" && ts.Slow {
				return true
			}
		}
		for _, ps := range a.a().Status().Peers {
			if ps.Name == "s" && ps.Slow {
				return true
			}
		}
		return false
	}
	const maxGens = 40
	after := -1 // generations b applied since s was first seen slow
	for g := 1; after < 2; g++ {
		if g > maxGens {
			t.Fatalf("a never reported the stalled peer slow in %d generations", maxGens)
		}
		for f := 0; f < 8; f++ {
			a.write(fmt.Sprintf("big/f%d.conf", f), randomText(60<<10), 0o644)
		}
		a.write("x.conf", fmt.Sprintf("v%d\n", g), 0o644)
		converged(t, fmt.Sprintf("b applies generation %d while s reads nothing", g), a, b)
		select {
		case <-p.closed():
			t.Fatalf("the stalled peer was disconnected after %d generations (%d since it was slow), before the test could show b is unaffected", g, after)
		default:
		}
		if after >= 0 {
			after++
		} else if slow() {
			after = 0
		}
	}
	select {
	case <-p.closed():
	case <-time.After(2 * waitLimit):
		t.Fatal("the stalled peer was never disconnected")
	}
	if !a.logHas("peer stopped reading its control stream") {
		t.Fatal("a's log does not say why it disconnected s")
	}
	guard.check(t)

	// the fault is gone: a real agent with s's identity catches up
	p.close()
	s.start()
	converged(t, "after the stall", a, b, s)
	afterFault()
}

// TestFaultHostilePinnedPeer: a pinned peer with no role in the job (e)
// sends the target and the source whatever it likes: random frames,
// announcements that would delete everything or write outside the root,
// content requests, forged results and zstd bombs. Nothing it sends is
// applied or served, no file outside the root changes, the target keeps
// every file the source has, and the job keeps converging.
func TestFaultHostilePinnedPeer(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	a, b, e := h.node("a"), h.node("b"), h.node("e")
	a.pin(b, e)
	b.pin(a, e)
	j := tjob{Name: "conf", Source: "a", Targets: []string{"b"}}
	a.Jobs, b.Jobs = []tjob{j}, []tjob{j}
	guard := newOutsideGuard(t, h)
	a.write("extensions.conf", seedExtensions, 0o644)
	a.write("sip.conf", "[general]\n", 0o644)
	a.start()
	b.start()
	converged(t, "initial sync", a, b)
	afterFault := faultCheck(t, guard, a, b)

	outside := filepath.Join(guard.dir, "secret.conf")
	zero := make([]byte, 32)
	evil := []wire.Message{
		// a complete announcement with nothing in it: "delete everything"
		&wire.Announce{Job: "conf", Version: 999, Origin: "a", Items: []wire.Item{}},
		&wire.Announce{Job: "conf", Version: 1000, Origin: "e", Items: []wire.Item{{Path: "evil.conf", Kind: 1, Mode: 0o644, Hash: zero}}},
		&wire.Result{Job: "conf", Version: 1, State: "bad", Reason: "forged"},
		&wire.RowsHave{Job: "conf", Version: 1},
		&wire.State{Node: "a", Healthy: false, Asterisk: "down"},
	}
	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	defer cancel()
	rng := mrand.New(mrand.NewPCG(1, 2))
	for _, victim := range []*tnode{a, b} {
		p, err := dialTestPeer(ctx, e, victim.addr())
		if err != nil {
			t.Fatal(err)
		}
		go p.drain()
		for round := 0; round < 3; round++ {
			for _, m := range evil {
				if err := p.sendMessage(m); err != nil {
					t.Fatalf("%s closed the connection on a well-formed message: %v", victim.name, err)
				}
			}
			// a transfer request for the source's content
			if s, err := p.qc.OpenStreamSync(ctx); err == nil {
				get, _ := p.codec.Encode(&wire.Get{Job: "conf", Path: "extensions.conf", Hash: zero})
				s.Write(get)
				s.Close()
			}
		}
		// an announcement naming a path outside the root does not even
		// decode; the connection ends
		bad, _ := json.Marshal(map[string]any{"job": "conf", "version": 5, "origin": "a", "items": []map[string]any{{"p": "../outside/secret.conf", "k": 1, "m": 0o644, "t": 0, "h": zero}}})
		p.send(rawFrame(wire.Version, byte(wire.TypeAnnounce), 0, bad))
		select {
		case <-p.closed():
		case <-ctx.Done():
			t.Fatalf("%s kept a connection that sent a path outside the root", victim.name)
		}
		p.close()
		// random frames, each on a fresh connection (the first bad one ends it)
		for i := 0; i < 20; i++ {
			p, err := dialTestPeer(ctx, e, victim.addr())
			if err != nil {
				t.Fatalf("reconnect %d: %v", i, err)
			}
			payload := make([]byte, rng.IntN(4096))
			for k := range payload {
				payload[k] = byte(rng.UintN(256))
			}
			p.send(rawFrame(byte(rng.UintN(3)), byte(rng.UintN(14)), byte(rng.UintN(2)), payload))
			p.close()
		}
	}
	// the job goes on while and after it happened
	a.appendTo("extensions.conf", "exten => 104,1,Hangup()\n")
	converged(t, "after the hostile peer", a, b)
	if _, err := os.Stat(b.path("evil.conf")); err == nil {
		t.Fatal("b applied a file announced by the hostile peer")
	}
	if _, err := os.ReadFile(outside); err != nil {
		t.Fatal(err)
	}
	js, _ := a.jobStatus("conf")
	if js.State != "good" {
		t.Fatalf("source job state %q (%s) after forged results", js.State, js.LastError)
	}
	afterFault()
	if !b.logHas("refusing a message from peer unread", "peer=e") || !a.logHas("refusing a message from peer unread", "peer=e") {
		t.Fatal("the refusals of e's messages are not logged")
	}
}
