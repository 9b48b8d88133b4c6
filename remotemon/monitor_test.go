package remotemon

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"pbxsync/internal/identity"
	"pbxsync/internal/testwait"
	"pbxsync/internal/wire"
)

type recorder struct {
	mu      sync.Mutex
	msgs    []string
	changes []string
	streams chan string
}

func newRecorder() *recorder { return &recorder{streams: make(chan string, 10)} }

func (r *recorder) HandleMessage(peer string, m wire.Message) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if res, ok := m.(*wire.Result); ok {
		r.msgs = append(r.msgs, peer+":"+res.Reason)
	}
}

func (r *recorder) HandleStream(ctx context.Context, peer string, first wire.Message, s *Stream) {
	g := first.(*wire.Get)
	s.WriteMessage(&wire.Data{Encoding: wire.EncodingZstd, Size: int64(len(g.Path)), Length: 1, Hash: g.Hash})
	io.WriteString(s, g.Path)
	s.Close()
	r.streams <- peer + ":" + g.Path
}

func (r *recorder) PeerChanged(peer string, up bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.changes = append(r.changes, map[bool]string{true: "up:", false: "down:"}[up]+peer)
}

func (r *recorder) snapshot() ([]string, []string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.msgs...), append([]string(nil), r.changes...)
}

type syncBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuf) Write(p []byte) (int, error) { s.mu.Lock(); defer s.mu.Unlock(); return s.b.Write(p) }
func (s *syncBuf) String() string              { s.mu.Lock(); defer s.mu.Unlock(); return s.b.String() }

type node struct {
	name string
	id   *identity.Identity
	mon  *Monitor
	rec  *recorder
	log  *syncBuf
	stop context.CancelFunc
	done chan struct{}
}

func newNode(t *testing.T, name string) *node {
	t.Helper()
	id, err := identity.LoadOrCreate(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return &node{name: name, id: id, rec: newRecorder(), log: &syncBuf{}}
}

func (n *node) peer(addr string) Peer { return Peer{Name: n.name, Address: addr, ID: n.id.ID} }

// waitFor waits until cond holds (bounded by testwait.Limit).
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	testwait.Eventually(t, what, func() error {
		if !cond() {
			return fmt.Errorf("not yet")
		}
		return nil
	})
}

// reserve returns a free UDP address by binding and releasing it.
func reserve(t *testing.T, n *node) string {
	m, err := New(Options{Node: n.name, Listen: "127.0.0.1:0", Identity: n.id, Handler: n.rec})
	if err != nil {
		t.Fatal(err)
	}
	addr := m.Addr().String()
	m.udp.Close()
	m.codec.Close()
	return addr
}

func TestPinnedPeersTalk(t *testing.T) {
	a, b := newNode(t, "a"), newNode(t, "b")
	addrA, addrB := reserve(t, a), reserve(t, b)
	a.startAt(t, addrA, b.peer(addrB))
	b.startAt(t, addrB, a.peer(addrA))
	waitFor(t, "a sees b", func() bool { return a.mon.Connected("b") && b.mon.Connected("a") })
	if err := a.mon.Send("b", &wire.Result{Job: "conf", State: "good", Reason: "hello"}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "b receives", func() bool { m, _ := b.rec.snapshot(); return len(m) == 1 && m[0] == "a:hello" })
	s, err := b.mon.OpenStream(context.Background(), "a")
	if err != nil {
		t.Fatal(err)
	}
	if err := s.WriteMessage(&wire.Get{Job: "conf", Path: "x/y.conf", Hash: make([]byte, 32)}); err != nil {
		t.Fatal(err)
	}
	d, err := s.ReadMessage()
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(io.LimitReader(s, d.(*wire.Data).Size))
	if string(body) != "x/y.conf" {
		t.Fatalf("body %q", body)
	}
	if got := <-a.rec.streams; got != "b:x/y.conf" {
		t.Fatalf("stream seen as %q", got)
	}
	waitFor(t, "rtt measured", func() bool { st := a.mon.Status(); return st[0].RTT > 0 && st[0].BytesSent > 0 })

	// b dies: a notices within DeadAfter + slack, and sees it again after restart
	b.stop()
	<-b.done
	waitFor(t, "a sees b down", func() bool { return !a.mon.Connected("b") })
	b.startAt(t, addrB, a.peer(addrA))
	waitFor(t, "a sees b up again", func() bool { return a.mon.Connected("b") })
	// the peer-change callback runs after Connected turns true: wait for
	// the third change to be recorded, then check all of them
	waitFor(t, "a's third peer change", func() bool { _, ch := a.rec.snapshot(); return len(ch) >= 3 })
	_, changes := a.rec.snapshot()
	if strings.Join(changes, ",") != "up:b,down:b,up:b" {
		t.Fatalf("peer changes %v", changes)
	}
}

func TestUnpinnedAndMismatchedAreRefused(t *testing.T) {
	a, b, c := newNode(t, "a"), newNode(t, "b"), newNode(t, "c")
	addrA, addrB, addrC := reserve(t, a), reserve(t, b), reserve(t, c)
	a.startAt(t, addrA, b.peer(addrB))
	// b pins c's ID at a's address
	b.startAt(t, addrB, Peer{Name: "a", Address: addrA, ID: c.id.ID})
	// c pins a correctly, but a does not know c
	c.startAt(t, addrC, a.peer(addrA))
	// Wait for the refusals themselves (a's of c, b's of a), not a guessed
	// time; then nobody may be connected.
	waitFor(t, "a's log names the unknown node c", func() bool {
		return strings.Contains(a.log.String(), "unknown node") && strings.Contains(a.log.String(), c.id.ID.String())
	})
	waitFor(t, "b's log explains the mismatch", func() bool { return strings.Contains(b.log.String(), "but the config pins") })
	if a.mon.Connected("b") || b.mon.Connected("a") || c.mon.Connected("a") {
		t.Fatal("a refused peer got connected")
	}
	for _, n := range []*node{a, b, c} {
		if _, changes := n.rec.snapshot(); len(changes) != 0 {
			t.Errorf("%s saw peer changes %v; a refused connection must never count as up", n.name, changes)
		}
	}
	st := b.mon.Status()
	if st[0].LastError == "" {
		t.Fatal("status shows no last error for the mismatched peer")
	}
}

func (n *node) startAt(t *testing.T, addr string, peers ...Peer) {
	t.Helper()
	n.startWith(t, addr, Options{PingInterval: 100 * time.Millisecond, DeadAfter: 600 * time.Millisecond}, peers...)
}

// startWith starts n's monitor at addr with the timing of o.
func (n *node) startWith(t *testing.T, addr string, o Options, peers ...Peer) {
	t.Helper()
	mon, err := New(Options{Node: n.name, Listen: addr, Identity: n.id, Peers: peers, Handler: n.rec,
		Log: slog.New(slog.NewTextHandler(n.log, nil)), PingInterval: o.PingInterval, DeadAfter: o.DeadAfter, MaxBackoff: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	n.mon = mon
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	n.stop, n.done = cancel, done
	go func() { mon.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
}

// TestRestartBeforeItsCloseArrives: a peer that restarts before this node
// saw its old connections end (its close lost or late, as under load) is
// seen going down and coming up again: the handler is told, so a source
// announces to the restarted target. Before, the new run's connection
// counted as a second connection of a peer that never left, and the
// target was told nothing until the next change.
func TestRestartBeforeItsCloseArrives(t *testing.T) {
	a, b := newNode(t, "a"), newNode(t, "b")
	addrA, addrB := reserve(t, a), reserve(t, b)
	// a never pings or times out within the test: it notices nothing of
	// b's death by itself
	slow := Options{PingInterval: time.Minute, DeadAfter: 2 * time.Minute}
	a.startWith(t, addrA, slow, b.peer(addrB))
	b.startAt(t, addrB, a.peer(addrA))
	waitFor(t, "a and b connected both ways", func() bool {
		return a.mon.Connected("b") && b.mon.Connected("a") && a.mon.Status()[0].Connections == 2
	})
	// b dies without a word: its socket goes first, so no close is sent
	b.mon.udp.Close()
	b.stop()
	<-b.done
	if !a.mon.Connected("b") {
		t.Fatal("a noticed b's death by itself; the test needs it not to")
	}
	b.startAt(t, addrB, a.peer(addrA))
	waitFor(t, "a's third peer change", func() bool { _, ch := a.rec.snapshot(); return len(ch) >= 3 })
	if _, changes := a.rec.snapshot(); strings.Join(changes, ",") != "up:b,down:b,up:b" {
		t.Fatalf("a saw peer changes %v, want up:b,down:b,up:b", changes)
	}
	if err := a.mon.Send("b", &wire.Result{Job: "conf", State: "good", Reason: "after restart"}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the restarted b receives", func() bool { m, _ := b.rec.snapshot(); return slices.Contains(m, "a:after restart") })
}

// TestTwoAgentsWithOneKey: two running agents presenting one node's key
// (a copied data_dir, a cloned machine) are named in the log and both
// stay connected, rather than each new connection of one taking the
// other's for a dead run and ending it, over and over.
func TestTwoAgentsWithOneKey(t *testing.T) {
	a, b1 := newNode(t, "a"), newNode(t, "b")
	b2 := &node{name: "b", id: b1.id, rec: newRecorder(), log: &syncBuf{}}
	addrA, addrB1, addrB2 := reserve(t, a), reserve(t, b1), reserve(t, b2)
	a.startAt(t, addrA, b1.peer(addrB1))
	b1.startAt(t, addrB1, a.peer(addrA))
	waitFor(t, "a and b connected", func() bool { return a.mon.Connected("b") && b1.mon.Connected("a") })
	b2.startAt(t, addrB2, a.peer(addrA))
	waitFor(t, "a names the two agents", func() bool { return strings.Contains(a.log.String(), "two running agents present this peer's key") })
	waitFor(t, "a holds both agents' connections", func() bool { return a.mon.Status()[0].Connections == 3 })
	if _, changes := a.rec.snapshot(); strings.Join(changes, ",") != "up:b,down:b,up:b" {
		t.Fatalf("a saw peer changes %v, want up:b,down:b,up:b (the second agent taken once for a restart, then no more)", changes)
	}
	if st := a.mon.Status()[0]; !strings.Contains(st.LastError, "two running agents") {
		t.Fatalf("status last error %q does not name the two agents", st.LastError)
	}
}
