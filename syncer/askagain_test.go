package syncer

import (
	"context"
	"fmt"
	"testing"
	"time"

	"pbxsync/internal/wire"
)

// TestUnansweredQuestionIsAskedAgain: a target whose state the source does
// not know is asked whether it holds the newest generation; while it has
// not answered (a target still starting over a large tree takes seconds),
// the repeat asks again instead of sending the complete index, which at
// 100k files is tens of MiB the target then decodes, admits and compares.
// An answer of resync gets the complete announcement.
func TestUnansweredQuestionIsAskedAgain(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	a, b := h.node("a"), h.node("b")
	a.pin(b)
	j := tjob{Name: "conf", Source: "a", Targets: []string{"b"}}
	a.Jobs = []tjob{j}
	for _, f := range []string{"x.conf", "y.conf", "z.conf"} {
		a.write(f, "exten => 100,1,Answer()\n", 0o644)
	}
	a.start()
	eventually(t, waitLimit, "a's first generation", func() error {
		if js, ok := a.jobStatus("conf"); !ok || js.Generation < 1 {
			return fmt.Errorf("no generation yet")
		}
		return nil
	})

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	p, err := dialTestPeer(ctx, b, a.addr())
	if err != nil {
		t.Fatal(err)
	}
	defer p.close()
	go p.stall(ctx) // keeps the connection alive; b answers nothing yet
	reader, err := wire.NewCodec()
	if err != nil {
		t.Fatal(err)
	}
	defer reader.Close()
	next := func() *wire.Announce {
		t.Helper()
		p.ctrl.SetReadDeadline(time.Now().Add(waitLimit)) // bounds a hang only
		for {
			m, err := reader.Read(p.ctrl)
			if err != nil {
				t.Fatalf("reading what a sends: %v", err)
			}
			if an, ok := m.(*wire.Announce); ok {
				return an
			}
		}
	}
	question := func(an *wire.Announce) bool { return an.Base == an.Version && len(an.Items) == 0 }

	first := next()
	if !question(first) {
		t.Fatalf("first announcement to a target of unknown state: base %d version %d, %d items; want the question (base = version, no items)", first.Base, first.Version, len(first.Items))
	}
	again := next() // the repeat of an unanswered announcement
	if again.Version != first.Version || !question(again) {
		t.Fatalf("repeat while b has not answered: version %d base %d, %d items; want the question again", again.Version, again.Base, len(again.Items))
	}
	if err := p.sendMessage(&wire.Result{Job: "conf", Version: first.Version, State: wire.ResultResync}); err != nil {
		t.Fatal(err)
	}
	full := next()
	if full.Base != 0 || len(full.Items) < 3 {
		t.Fatalf("after resync: base %d, %d items; want the complete announcement", full.Base, len(full.Items))
	}
}
