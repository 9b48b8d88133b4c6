package remotemon

import (
	"testing"
	"time"
)

// TestIdleLinkPingsEachConnectionOneWay: two peers that dial each other
// hold two connections; each is pinged by the side that dialed it only
// (the other side's pings would double the idle traffic of the link and
// prove nothing more), so an idle peer sends one ping and one pong per
// PingInterval, not two of each.
func TestIdleLinkPingsEachConnectionOneWay(t *testing.T) {
	a, b := newNode(t, "a"), newNode(t, "b")
	addrA, addrB := reserve(t, a), reserve(t, b)
	a.startAt(t, addrA, b.peer(addrB))
	b.startAt(t, addrB, a.peer(addrA))
	waitFor(t, "two connections, RTT measured on both sides", func() bool {
		sa, sb := a.mon.Status(), b.mon.Status()
		return sa[0].Connections == 2 && sb[0].Connections == 2 && sa[0].RTT > 0 && sb[0].RTT > 0
	})
	const interval = 100 * time.Millisecond // startAt's PingInterval
	sent := func() uint64 { return a.mon.Status()[0].BytesSent }
	time.Sleep(2 * time.Second) // past the handshakes' and path MTU probes' packets
	s0, t0 := sent(), time.Now()
	time.Sleep(2 * time.Second)
	perInterval := float64(sent()-s0) / float64(time.Since(t0)/interval)
	// A ping or pong is a 17-byte frame in a QUIC packet of ~55 bytes,
	// and the peer's pongs get ~40-byte acknowledgements: one ping, one
	// pong and one acknowledgement per interval measured ~135 bytes; two of
	// each (every side pinging every connection) ~265.
	if perInterval > 200 {
		t.Errorf("an idle peer sent %.0f bytes per ping interval; want one ping and one pong (~135)", perInterval)
	}
	t.Logf("idle: %.0f bytes sent per %v", perInterval, interval)
	if !a.mon.Connected("b") || !b.mon.Connected("a") {
		t.Fatal("a connection dropped while idle")
	}
}
