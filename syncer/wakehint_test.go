package syncer

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"pbxsync/internal/wire"
)

// TestE2ESourceWakesItsTargets: a source that let go of its index while
// idle tells its target, as it wakes for a local change, that a
// generation is coming (wire.Wake); the edit reaches the target as a
// change admitted by its changes.
func TestE2ESourceWakesItsTargets(t *testing.T) {
	t.Parallel()
	a, b := parkingPair(t, 400, 20)
	for i := 1; i <= 2; i++ {
		parkedWithAnswer(t, fmt.Sprintf("before edit %d", i), a, b)
		a.appendTo(fmt.Sprintf("d%02d/f%04d.conf", i, i), "edited\n")
		converged(t, fmt.Sprintf("edit %d after an idle spell", i), a, b)
		eventually(t, waitLimit, "the source's wake at the target", func() error {
			if c := b.countLines("its source is making a generation", "peer=a"); c < i {
				return fmt.Errorf("b took %d wakes from a, want %d", c, i)
			}
			return nil
		})
	}
	if b.logHas("asking for a complete announcement") {
		t.Error("the target asked for a complete announcement after a wake")
	}
}

// TestE2ERollingSourceWakesNoTarget: a job that announces a wave of
// targets at a time sends no Wake: the edit after an idle spell arrives
// as before, and the target is never told a generation is coming.
func TestE2ERollingSourceWakesNoTarget(t *testing.T) {
	t.Parallel()
	a, b := parkingPairWith(t, 400, 20, func(_ *harness, a, _ *tnode) { a.Jobs[0].Extra += `order = "rolling"` + "\n" })
	parkedWithAnswer(t, "before the edit", a, b)
	a.appendTo("d01/f0001.conf", "edited\n")
	converged(t, "an edit after an idle spell", a, b)
	if a.countLines("read the newest index back") == 0 {
		t.Fatal("the source did not read its index back: the edit did not come after a park")
	}
	waitLetGo(t, 2, b) // long after a Wake sent with the edit would have come
	if b.logHas("its source is making a generation") {
		t.Error("a rolling job's source woke its target")
	}
}

// TestWakeReadiesAParkedTarget: a Wake from the job's source makes a
// target that let go of its index read it back and copy it for the next
// announcement, with no announcement yet; a Wake from a pinned peer that
// is not the job's source is refused unread and wakes nothing.
func TestWakeReadiesAParkedTarget(t *testing.T) {
	t.Parallel()
	var c *tnode
	a, b := parkingPairWith(t, 400, 20, func(h *harness, _, b *tnode) {
		c = h.node("c")
		b.pin(c)
	})
	a.appendTo("d01/f0001.conf", "edited\n") // the target's newest generation: an admission of its base as it was
	converged(t, "an edit", a, b)
	waitLetGo(t, 1, b)
	a.stop()
	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	defer cancel()

	wake := func(p *testPeer) (wire.Message, error) {
		s, err := p.qc.OpenStreamSync(ctx)
		if err != nil {
			return nil, err
		}
		if err := p.codec.Write(s, &wire.Wake{Job: "conf"}); err != nil {
			return nil, err
		}
		return p.codec.Read(s) // the refusal, or the end of the stream
	}
	// the edit may have made b ready for it by a Wake of its own source
	// already (when b had let go of its index before a's Wake came):
	// what counts is what comes after this
	readied := b.countLines("its source is making a generation")
	pc, err := dialTestPeer(ctx, c, b.addr())
	if err != nil {
		t.Fatal(err)
	}
	defer pc.close()
	m, err := wake(pc)
	if e, ok := m.(*wire.Error); err != nil || !ok || !strings.Contains(e.Message, "refused") {
		t.Fatalf("a Wake from a peer that is not the source: got %v %v, want a refusal", m, err)
	}

	// the source's identity; its connection wakes b (every event does),
	// which lets go of its index again once idle
	parks := b.countLines("let go of the newest index while idle")
	pa, err := dialTestPeer(ctx, a, b.addr())
	if err != nil {
		t.Fatal(err)
	}
	defer pa.close()
	waitLetGo(t, parks+1, b)
	if b.countLines("its source is making a generation") != readied {
		t.Fatal("b took the Wake of a peer that is not its source")
	}
	readBack := b.countLines("read the newest index back")
	if _, err := wake(pa); err != nil && !strings.Contains(err.Error(), "EOF") {
		t.Fatalf("the source's Wake: %v", err)
	}
	eventually(t, waitLimit, "the target woken by its source", func() error {
		if b.countLines("its source is making a generation", "peer=a", "spare_made=true") <= readied {
			return fmt.Errorf("b has not copied its index for the coming announcement")
		}
		return nil
	})
	if c := b.countLines("read the newest index back"); c != readBack+1 {
		t.Errorf("b read its index back %d times for the Wake, want once", c-readBack)
	}
}
