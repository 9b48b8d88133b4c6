package syncer

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

// dialplanOf returns a dialplan of at least size bytes.
func dialplanOf(size int) string {
	var b strings.Builder
	b.WriteString(seedExtensions)
	for i := 0; b.Len() < size; i++ {
		fmt.Fprintf(&b, "exten => %d,1,Dial(PJSIP/%d,30,tT)\n same => n,VoiceMail(%d@default,u)\n same => n,Hangup()\n", 10000+i, 10000+i, 10000+i)
	}
	return b.String()
}

// received returns what b's job conf counted as received: wire and
// logical bytes.
func received(n *tnode) (wire, logical uint64) {
	js, _ := n.jobStatus("conf")
	return js.BytesReceived, js.LogicalBytesReceived
}

// TestAutoDeltaOnLoopback: with delta = "auto" (the default), a one-line
// edit travels as a delta between peers on loopback (RTT far below what
// "auto" once asked for), both for a file that rides inside the
// announcement (its zstd frame is under 64 KiB) and for one fetched over a
// transfer stream (2 MiB, under the old 4 MiB size threshold).
func TestAutoDeltaOnLoopback(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	a, b := h.pair("")
	a.write("extensions.conf", dialplanOf(200<<10), 0o644)
	a.write("big/extensions.conf", dialplanOf(2<<20), 0o644)
	a.start()
	b.start()
	converged(t, "initial sync", a, b)
	waitGood(t, b, "conf")
	for _, f := range []string{"extensions.conf", "big/extensions.conf"} {
		w0, l0 := received(b)
		js0, _ := b.jobStatus("conf")
		a.appendTo(f, "exten => 99999,1,Hangup()\n")
		converged(t, "a one-line edit of "+f, a, b)
		waitGood(t, b, "conf")
		w1, l1 := received(b)
		js1, _ := b.jobStatus("conf")
		if l1-l0 < 200<<10 {
			t.Fatalf("%s: logical bytes %d: the edit was not counted", f, l1-l0)
		}
		if w1-w0 > 4096 {
			t.Errorf("%s: a one-line edit of %d bytes took %d bytes on the wire; want a delta of a few hundred", f, l1-l0, w1-w0)
		}
		if f == "extensions.conf" && js1.Fetches != js0.Fetches {
			t.Errorf("%s: fetched over a transfer stream; want the delta inline", f)
		}
		t.Logf("%s: one-line edit of %d bytes: %d bytes on the wire", f, l1-l0, w1-w0)
	}
}

// TestDeltaBaseAfterSourceRestart: a target that missed the newest
// generation while the source restarted still gets it as a delta against
// the generation it holds: the source serves the generation before its
// newest after a restart as it did before.
func TestDeltaBaseAfterSourceRestart(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	a, b := h.pair("")
	a.write("extensions.conf", dialplanOf(1<<20), 0o644)
	a.start()
	b.start()
	converged(t, "initial sync", a, b)
	waitGood(t, b, "conf")
	b.stop()
	a.appendTo("extensions.conf", "exten => 99999,1,Hangup()\n")
	eventually(t, waitLimit, "the source records the edit", func() error {
		if js, _ := a.jobStatus("conf"); js.Generation < 2 {
			return fmt.Errorf("source at generation %d", js.Generation)
		}
		return nil
	})
	a.restart()
	b.start()
	converged(t, "the target catches up after the source's restart", a, b)
	waitGood(t, b, "conf")
	w, l := received(b)
	if l < 1<<20 {
		t.Fatalf("logical bytes %d: the catch-up was not counted", l)
	}
	if w > 4096 {
		t.Errorf("catching up on a one-line edit of %d bytes took %d bytes on the wire; want a delta", l, w)
	}
	t.Logf("catch-up after the source's restart: %d of %d bytes on the wire", w, l)
}

// TestIncrementalAfterRestart: an announcement admitted in full that
// gives what the target already holds (after the target's restart; also
// a complete announcement repeated during a long initial sync) keeps the
// target's base for admitting the next incremental announcement by its
// changes. Before, it dropped that base, and the next edit was admitted,
// planned and recorded over the whole index (the slow first edit after a
// big initial sync or a restart).
func TestIncrementalAfterRestart(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	a, b := h.pair("")
	for i := range 20 {
		a.write(fmt.Sprintf("pjsip.d/ep%02d.conf", i), fmt.Sprintf("[ep%d]\ntype=endpoint\n", i), 0o644)
	}
	a.start()
	b.start()
	converged(t, "initial sync", a, b)
	waitGood(t, b, "conf")
	admitted := func() int {
		return b.countLines("admitting an incremental announcement in full") + b.countLines("a complete announcement") +
			b.countLines("asked whether this node holds its newest generation")
	}
	before := admitted()
	b.restart()
	eventually(t, waitLimit, "the restarted target is told the source's newest generation", func() error {
		if admitted() == before {
			return fmt.Errorf("no announcement admitted yet")
		}
		return nil
	})
	waitGood(t, b, "conf")
	time.Sleep(100 * time.Millisecond) // its answer reaches the source
	byChanges := b.countLines("admitting an announcement by its changes")
	a.appendTo("pjsip.d/ep07.conf", "allow=ulaw\n")
	eventually(t, waitLimit, "the edit arrives", func() error {
		if got := string(b.read("pjsip.d/ep07.conf")); got != "[ep7]\ntype=endpoint\nallow=ulaw\n" {
			return fmt.Errorf("target holds %q", got)
		}
		return nil
	})
	if b.countLines("admitting an announcement by its changes") == byChanges {
		t.Fatal("the edit after the target's restart was not admitted by its changes")
	}
}

// TestSourceRestartSendsNoIndex: after the source restarts over an
// unchanged tree, it asks the target whether it holds its newest
// generation (an announcement against that generation itself, no items)
// instead of sending the complete index (all of a job's items: tens of
// MiB at 100k files, decoded, admitted and compared by the target).
func TestSourceRestartSendsNoIndex(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	a, b := h.pair("")
	for i := range 20 {
		a.write(fmt.Sprintf("pjsip.d/ep%02d.conf", i), fmt.Sprintf("[ep%d]\ntype=endpoint\n", i), 0o644)
	}
	a.start()
	b.start()
	converged(t, "initial sync", a, b)
	waitGood(t, b, "conf")
	complete := b.countLines("a complete announcement")
	incremental := b.countLines("admitting an announcement by its changes")
	asked := b.countLines("asked whether this node holds its newest generation")
	a.restart()
	eventually(t, waitLimit, "the target answers the restarted source", func() error {
		if b.countLines("admitting an announcement by its changes") == incremental && b.countLines("a complete announcement") == complete &&
			b.countLines("asked whether this node holds its newest generation") == asked {
			return fmt.Errorf("no announcement admitted yet")
		}
		return nil
	})
	waitGood(t, b, "conf")
	if got := b.countLines("a complete announcement"); got != complete {
		t.Errorf("the source sent its complete index after its restart (%d complete announcements, %d before)", got, complete)
	}
	// and the next edit still goes as a change
	incremental = b.countLines("admitting an announcement by its changes")
	a.appendTo("pjsip.d/ep03.conf", "allow=alaw\n")
	eventually(t, waitLimit, "the edit arrives", func() error {
		if got := string(b.read("pjsip.d/ep03.conf")); got != "[ep3]\ntype=endpoint\nallow=alaw\n" {
			return fmt.Errorf("target holds %q", got)
		}
		return nil
	})
	if b.countLines("admitting an announcement by its changes") == incremental {
		t.Error("the edit after the source's restart was not admitted by its changes")
	}
}
