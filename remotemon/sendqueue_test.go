package remotemon

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/quic-go/quic-go"

	"pbxsync/internal/identity"
	"pbxsync/internal/wire"
)

// stalledPeer dials addr with id as node name, exchanges Hellos, then never
// reads its control stream again; it keeps sending Pings so that it looks
// alive. It returns when ctx is done or the connection ends.
func stalledPeer(ctx context.Context, t *testing.T, id *identity.Identity, name, addr string, gone chan<- struct{}) {
	defer close(gone)
	codec, err := wire.NewCodec()
	if err != nil {
		t.Error(err)
		return
	}
	defer codec.Close()
	conf := &tls.Config{MinVersion: tls.VersionTLS13, Certificates: []tls.Certificate{id.Certificate},
		NextProtos: []string{alpn}, ServerName: "pbxsync", InsecureSkipVerify: true}
	qc, err := quic.DialAddr(ctx, addr, conf, &quic.Config{KeepAlivePeriod: 200 * time.Millisecond, MaxIdleTimeout: time.Minute})
	if err != nil {
		t.Errorf("stalled peer: dial: %v", err)
		return
	}
	defer qc.CloseWithError(0, "")
	ctrl, err := qc.OpenStreamSync(ctx)
	if err != nil {
		t.Errorf("stalled peer: %v", err)
		return
	}
	if err := codec.Write(ctrl, &wire.Hello{Node: name}); err != nil {
		t.Errorf("stalled peer: %v", err)
		return
	}
	if _, err := codec.Read(ctrl); err != nil {
		t.Errorf("stalled peer: no Hello back: %v", err)
		return
	}
	// from here on: write Pings, read nothing
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for seq := uint64(1); ; seq++ {
		select {
		case <-ctx.Done():
			return
		case <-qc.Context().Done():
			return
		case <-tick.C:
		}
		if err := codec.Write(ctrl, &wire.Ping{Seq: seq}); err != nil {
			return
		}
	}
}

// countingRecorder counts Results per peer.
type countingRecorder struct {
	recorder
	cmu     sync.Mutex
	results int
}

func (r *countingRecorder) HandleMessage(peer string, m wire.Message) {
	if _, ok := m.(*wire.Result); ok {
		r.cmu.Lock()
		r.results++
		r.cmu.Unlock()
	}
}

func (r *countingRecorder) count() int { r.cmu.Lock(); defer r.cmu.Unlock(); return r.results }

// TestStalledPeerDoesNotBlockSends: a pinned peer that stops reading its
// control stream never blocks Send: while it has read nothing, a healthy
// peer receives every message sent after each big one to the stalled peer;
// the stalled peer is reported slow, its queue stays bounded, and it is
// disconnected after StallAfter.
func TestStalledPeerDoesNotBlockSends(t *testing.T) {
	a, b, s := newNode(t, "a"), newNode(t, "b"), newNode(t, "s")
	addrA, addrB := reserve(t, a), reserve(t, b)
	const maxQueue = 4 << 20
	mon, err := New(Options{Node: "a", Listen: addrA, Identity: a.id,
		Peers:   []Peer{b.peer(addrB), {Name: "s", Address: "127.0.0.1:9", ID: s.id.ID}},
		Handler: a.rec, Log: slog.New(slog.NewTextHandler(a.log, nil)),
		MaxQueue: maxQueue, SlowAfter: 300 * time.Millisecond, StallAfter: 30 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { mon.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	rb := &countingRecorder{recorder: *newRecorder()}
	monB, err := New(Options{Node: "b", Listen: addrB, Identity: b.id, Peers: []Peer{a.peer(addrA)}, Handler: rb})
	if err != nil {
		t.Fatal(err)
	}
	doneB := make(chan struct{})
	go func() { monB.Run(ctx); close(doneB) }()
	t.Cleanup(func() { cancel(); <-doneB })
	gone := make(chan struct{})
	go stalledPeer(ctx, t, s.id, "s", addrA, gone)
	waitFor(t, "both peers up", func() bool { return mon.Connected("b") && mon.Connected("s") })

	// 1 MiB of random inline data per message: 40 MiB for s, which reads
	// nothing, far more than QUIC's flow-control window and the queue.
	big := func() *wire.Announce {
		data := make([]byte, wire.MaxInline)
		rand.Read(data)
		return &wire.Announce{Job: "conf", Version: 1, Origin: "a", Items: []wire.Item{}, Inline: []wire.Inline{{Hash: make([]byte, 32), Encoding: wire.EncodingZstd, Data: data}}}
	}()
	// watch the status from the start: s must be reported slow while it
	// is still connected
	slowSeen := make(chan PeerStatus, 1)
	go func() {
		for ctx.Err() == nil {
			for _, p := range mon.Status() {
				if p.Name == "s" && p.Slow && p.Connected {
					slowSeen <- p
					return
				}
			}
			time.Sleep(5 * time.Millisecond)
		}
	}()
	const n, nBig = 40, 8
	for i := 0; i < n; i++ {
		if i < nBig {
			mon.Send("s", big) // ErrPeerSlow once its queue is full
		}
		if err := mon.Send("b", &wire.Result{Job: "conf", Version: uint64(i), State: "good"}); err != nil {
			t.Fatalf("send %d to the healthy peer: %v", i, err)
		}
	}
	// every message to b arrives while s has read nothing beyond its Hello
	deadline := time.Now().Add(60 * time.Second)
	for rb.count() != n {
		if time.Now().After(deadline) {
			t.Fatalf("b received %d of %d messages", rb.count(), n)
		}
		select {
		case <-gone:
			if rb.count() != n {
				t.Fatalf("s was disconnected before b got its messages (%d of %d)", rb.count(), n)
			}
		default:
		}
		time.Sleep(10 * time.Millisecond)
	}
	var st PeerStatus
	select {
	case st = <-slowSeen:
	case <-time.After(60 * time.Second):
		t.Fatal("s was never reported slow while connected")
	}
	if st.QueuedBytes > maxQueue+len(mustEncode(t, mon.codec, big)) {
		t.Fatalf("%d bytes queued for s, bound %d", st.QueuedBytes, maxQueue)
	}
	select {
	case <-gone:
	case <-time.After(60 * time.Second):
		t.Fatal("the stalled peer was never disconnected")
	}
	waitFor(t, "disconnect noted", func() bool { return !mon.Connected("s") })
	if !strings.Contains(a.log.String(), "peer stopped reading its control stream") {
		t.Fatalf("no log of the disconnect:\n%s", a.log.String())
	}
}

func mustEncode(t *testing.T, c *wire.Codec, m wire.Message) []byte {
	b, err := c.Encode(m)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
