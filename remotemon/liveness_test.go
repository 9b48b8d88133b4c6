package remotemon

import (
	"context"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"pbxsync/internal/wire"
)

// blockingRec is a handler whose HandleMessage blocks on a Result with
// reason "block" until released: a node busy with one message (a large
// announcement being decoded, a loaded machine) reads nothing more from
// the control stream meanwhile.
type blockingRec struct {
	*recorder
	once    sync.Once
	entered chan struct{}
	release chan struct{}
}

func (b *blockingRec) HandleMessage(peer string, m wire.Message) {
	if r, ok := m.(*wire.Result); ok && r.Reason == "block" {
		b.once.Do(func() { close(b.entered) })
		<-b.release
	}
	b.recorder.HandleMessage(peer, m)
}

// TestBusyReaderKeepsTheConnection: while b's control-stream reader is
// held up for three times the silence limit, a's pings keep arriving at
// b's QUIC connection (they wait, unread, behind the message b is busy
// with). That is a live peer: b keeps the connection (before, b's pinger
// counted only frames read and closed it after DeadAfter).
func TestBusyReaderKeepsTheConnection(t *testing.T) {
	a, b := newNode(t, "a"), newNode(t, "b")
	addrA, addrB := reserve(t, a), reserve(t, b)
	const deadAfter = 2 * time.Second
	blk := &blockingRec{recorder: b.rec, entered: make(chan struct{}), release: make(chan struct{})}
	start := func(n *node, addr string, h Handler, peer Peer) {
		mon, err := New(Options{Node: n.name, Listen: addr, Identity: n.id, Peers: []Peer{peer}, Handler: h,
			Log: slog.New(slog.NewTextHandler(n.log, nil)), PingInterval: 100 * time.Millisecond, DeadAfter: deadAfter, MaxBackoff: 200 * time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		n.mon = mon
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() { mon.Run(ctx); close(done) }()
		t.Cleanup(func() { cancel(); <-done })
	}
	start(a, addrA, a.rec, b.peer(addrB))
	start(b, addrB, blk, a.peer(addrA))
	waitFor(t, "a and b connected", func() bool { return a.mon.Connected("b") && b.mon.Connected("a") })
	// one connection each way: block b's reader on both
	for range 2 {
		if err := a.mon.Send("b", &wire.Result{Job: "conf", State: "good", Reason: "block"}); err != nil {
			t.Fatal(err)
		}
	}
	<-blk.entered
	time.Sleep(3 * deadAfter) // a negative check: nothing may happen meanwhile
	close(blk.release)
	if log := b.log.String(); strings.Contains(log, "peer stopped answering") {
		t.Fatalf("b dropped a live peer while busy:\n%s", log)
	}
	if _, changes := b.rec.snapshot(); strings.Join(changes, ",") != "up:a" {
		t.Fatalf("b's peer changes %v: want only up:a", changes)
	}
}
