package remotemon

import (
	"context"
	"crypto/tls"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/quic-go/quic-go"

	"pbxsync/internal/testwait"
)

// TestRefusalsRateLimit: per host (ports ignored) the first refusal of a
// window is logged, the rest counted; the count comes back as a summary when
// the window ends, and hosts beyond the bound share one entry.
func TestRefusalsRateLimit(t *testing.T) {
	r := newRefusals(time.Minute)
	t0 := time.Unix(1000, 0)
	if log, _ := r.note("192.0.2.1:1000", "ID1", t0); !log {
		t.Fatal("first refusal not logged")
	}
	for i := 1; i <= 330; i++ {
		if log, _ := r.note("192.0.2.1:"+strconv.Itoa(1000+i), "ID1", t0.Add(time.Duration(i)*time.Millisecond)); log {
			t.Fatalf("refusal %d of the same host logged", i)
		}
	}
	if log, _ := r.note("192.0.2.2:1", "ID2", t0); !log {
		t.Fatal("another host's first refusal not logged")
	}
	if got := r.flush(t0.Add(30 * time.Second)); len(got) != 0 {
		t.Fatalf("flush inside the window: %v", got)
	}
	got := r.flush(t0.Add(time.Minute))
	if len(got) != 1 || got[0].host != "192.0.2.1" || got[0].suppressed != 330 || got[0].lastID != "ID1" {
		t.Fatalf("summaries %+v, want one for 192.0.2.1 with 330", got)
	}
	// after the window: logged again; a later window ending at the next note
	// hands back its summary.
	t1 := t0.Add(2 * time.Minute)
	if log, _ := r.note("192.0.2.1:5", "ID1", t1); !log {
		t.Fatal("first refusal of a new window not logged")
	}
	r.note("192.0.2.1:6", "ID1", t1.Add(time.Second))
	log, done := r.note("192.0.2.1:7", "ID1", t1.Add(2*time.Minute))
	if !log || done.suppressed != 1 {
		t.Fatalf("note after the window: log %v, summary %+v", log, done)
	}

	// bounded memory: hosts beyond max share the "other hosts" entry
	r = newRefusals(time.Minute)
	r.max = 3
	logged := 0
	for i := 0; i < 100; i++ {
		if log, _ := r.note(net.IPv4(198, 51, 100, byte(i)).String()+":1", "", t0); log {
			logged++
		}
	}
	if len(r.hosts) != 4 || logged != 4 {
		t.Fatalf("%d hosts tracked, %d logged; want 4 and 4 (3 + other hosts)", len(r.hosts), logged)
	}
}

// TestRefusedHandshakesLogRateLimited: an unpinned node hammering the
// listener with real QUIC handshakes gets one WARN line, and the rest are
// reported as one summary with their count.
func TestRefusedHandshakesLogRateLimited(t *testing.T) {
	a, b, evil := newNode(t, "a"), newNode(t, "b"), newNode(t, "evil")
	addrA, addrB := reserve(t, a), reserve(t, b)
	mon, err := New(Options{Node: "a", Listen: addrA, Identity: a.id, Peers: []Peer{b.peer(addrB)}, Handler: a.rec,
		Log: slog.New(slog.NewTextHandler(a.log, nil)), RefusalWindow: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { mon.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })

	const n = 40
	udpAddr, err := net.ResolveUDPAddr("udp", addrA)
	if err != nil {
		t.Fatal(err)
	}
	tlsConf := &tls.Config{MinVersion: tls.VersionTLS13, Certificates: []tls.Certificate{evil.id.Certificate},
		NextProtos: []string{alpn}, ServerName: "pbxsync", InsecureSkipVerify: true}
	for i := 0; i < n; i++ {
		dctx, dcancel := context.WithTimeout(context.Background(), testwait.Limit())
		qc, err := quic.DialAddr(dctx, udpAddr.String(), tlsConf, &quic.Config{HandshakeIdleTimeout: testwait.Limit()})
		dcancel()
		if err == nil {
			// TLS 1.3: the client may finish before the server refused
			// it; wait for the refusal to close the connection.
			select {
			case <-qc.Context().Done():
			case <-time.After(testwait.Limit()):
				t.Fatal("the server did not refuse an unpinned client")
			}
		}
	}
	counted := func() int {
		mon.refused.mu.Lock()
		defer mon.refused.mu.Unlock()
		if e, ok := mon.refused.hosts["127.0.0.1"]; ok {
			return 1 + e.suppressed
		}
		return 0
	}
	deadline := time.Now().Add(testwait.Limit())
	for counted() != n && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if got := counted(); got != n {
		t.Fatalf("%d of %d handshakes counted as refused; log:\n%s", got, n, a.log.String())
	}
	if got := strings.Count(a.log.String(), "refusing connection from unknown node"); got != 1 {
		t.Fatalf("%d WARN lines for %d refused handshakes from one host, want 1:\n%s", got, n, a.log.String())
	}
	for _, s := range mon.refused.flush(time.Now().Add(2 * time.Hour)) {
		mon.logRefusalSummary(s)
	}
	if !strings.Contains(a.log.String(), "suppressed="+strconv.Itoa(n-1)) || !strings.Contains(a.log.String(), evil.id.ID.String()) {
		t.Fatalf("no summary of the %d suppressed refusals naming the presented ID:\n%s", n-1, a.log.String())
	}
}
