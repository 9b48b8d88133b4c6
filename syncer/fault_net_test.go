package syncer

// Network faults (issue 10): a stalled peer and a hostile pinned peer.
// After each: no file outside the job roots changed, no file on a target
// was lost that the source still has, and the job converges once the fault
// is gone.

import (
	"context"
	"crypto/rand"
	"fmt"
	"testing"
	"time"
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
	// long enough for the generations below on a loaded machine; the
	// disconnect is waited for afterwards
	a.tune = func(o *Options) { o.StallAfter = 45 * time.Second }
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
	// window and then its send queue fill within a few generations.
	const gens = 8
	start := time.Now()
	for g := 1; g <= gens; g++ {
		for f := 0; f < 8; f++ {
			a.write(fmt.Sprintf("big/f%d.conf", f), randomText(60<<10), 0o644)
		}
		a.write("x.conf", fmt.Sprintf("v%d\n", g), 0o644)
		eventually(t, faultWait-time.Since(start), fmt.Sprintf("b applies generation %d while s reads nothing", g), func() error {
			return diffTrees(a.tree, b.tree)
		})
		select {
		case <-p.closed():
			t.Fatalf("the stalled peer was disconnected after %d generations, before the test could show b is unaffected", g)
		default:
		}
	}
	eventually(t, faultWait, "a reports s slow", func() error {
		js, _ := a.jobStatus("conf")
		for _, ts := range js.Targets {
			if ts.Name == "s" && ts.Slow {
				return nil
			}
		}
		for _, ps := range a.a().Status().Peers {
			if ps.Name == "s" && ps.Slow {
				return nil
			}
		}
		return fmt.Errorf("targets %+v", js.Targets)
	})
	select {
	case <-p.closed():
	case <-time.After(faultWait):
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
