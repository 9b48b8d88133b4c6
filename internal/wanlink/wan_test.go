package wanlink

import (
	"net"
	"testing"
	"time"

	"pbxsync/internal/testwait"
)

// TestWANJoinsSitesOnly: hosts of one site reach each other directly,
// hosts of different sites through a delaying link, and the WAN counts
// what crossed between each pair of sites and into each host.
func TestWANJoinsSitesOnly(t *testing.T) {
	t.Parallel()
	const delay = 10 * time.Millisecond
	a, b, c := echo(t), echo(t), echo(t)
	w, err := StartWAN(testwait.Context(t), WANConfig{Delay: delay, Hosts: []Host{
		{Name: "a", Site: "dc1", Addr: a.String()},
		{Name: "b", Site: "dc1", Addr: b.String()},
		{Name: "c", Site: "dc2", Addr: c.String()},
	}})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	for _, r := range []struct{ from, to, want string }{
		{"a", "b", b.String()}, {"b", "a", a.String()}, {"x", "a", ""}, {"a", "x", ""},
	} {
		if got := w.Addr(r.from, r.to); got != r.want {
			t.Errorf("Addr(%s, %s) = %q, want %q", r.from, r.to, got, r.want)
		}
	}
	ac, bc, ca := w.Addr("a", "c"), w.Addr("b", "c"), w.Addr("c", "a")
	if ac == c.String() || ca == a.String() || ac == "" || ca == "" {
		t.Fatalf("hosts of different sites reach each other directly: a→c %s, c→a %s", ac, ca)
	}
	if ac != bc {
		t.Errorf("a and b reach c through different links (%s, %s): want one per site and host", ac, bc)
	}
	// 100 bytes a→c and back, 30 bytes c→a and back, 7 bytes a→b (direct).
	c2, err := resolve(ac)
	if err != nil {
		t.Fatal(err)
	}
	if rtt := roundTrip(t, client(t, c2), make([]byte, 100)); rtt < 2*delay {
		t.Errorf("round trip across sites took %v with %v each way", rtt, delay)
	}
	a2, err := resolve(ca)
	if err != nil {
		t.Fatal(err)
	}
	roundTrip(t, client(t, a2), make([]byte, 30))
	roundTrip(t, client(t, b), make([]byte, 7))

	if got := w.Between("dc1", "dc2"); got.Up != 100+30 || got.Down != 100+30 {
		t.Errorf("dc1→dc2 %d, dc2→dc1 %d; want 130 each", got.Up, got.Down)
	}
	if got, want := w.Between("dc2", "dc1"), w.Between("dc1", "dc2").Reverse(); got != want {
		t.Errorf("Between(dc2, dc1) = %+v, want %+v", got, want)
	}
	if got := w.Between("dc1", "dc1"); got.Total() != 0 {
		t.Errorf("traffic inside dc1 crossed the WAN: %+v", got)
	}
	if got := w.Into("c"); got.Up != 100 || got.Down != 100 {
		t.Errorf("into c: %+v, want 100 bytes each way", got)
	}
	if got := w.Into("b"); got.Total() != 0 {
		t.Errorf("into b: %+v, want nothing (its traffic stayed in dc1)", got)
	}
	if got := w.Counts().Total(); got != 2*130 {
		t.Errorf("WAN total %d, want 260", got)
	}
}

// TestWANCountsAHostDialingOut: a host that sends from the address it
// listens on (as a QUIC agent dials its peers) is counted in Into for
// what it sends and receives over the links of its own site.
func TestWANCountsAHostDialingOut(t *testing.T) {
	t.Parallel()
	a := echo(t)
	d, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	w, err := StartWAN(testwait.Context(t), WANConfig{Hosts: []Host{
		{Name: "a", Site: "dc1", Addr: a.String()},
		{Name: "d", Site: "dc2", Addr: d.LocalAddr().String()},
	}})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	to, err := resolve(w.Addr("d", "a"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := d.WriteToUDP(make([]byte, 40), to); err != nil {
		t.Fatal(err)
	}
	d.SetReadDeadline(time.Now().Add(testwait.Limit()))
	if _, _, err := d.ReadFromUDP(make([]byte, 100)); err != nil {
		t.Fatalf("no echo: %v", err)
	}
	if got := w.Into("d"); got.Up != 40 || got.Down != 40 {
		t.Errorf("Into(d) = %+v, want 40 bytes each way", got)
	}
	if got := w.Into("a"); got.Up != 40 || got.Down != 40 {
		t.Errorf("Into(a) = %+v, want 40 bytes each way", got)
	}
}

func TestWANRefusesDuplicateHosts(t *testing.T) {
	_, err := StartWAN(testwait.Context(t), WANConfig{Hosts: []Host{{Name: "a", Site: "x", Addr: "127.0.0.1:9"}, {Name: "a", Site: "y", Addr: "127.0.0.1:9"}}})
	if err == nil {
		t.Error("two hosts named a accepted")
	}
}

func resolve(addr string) (*net.UDPAddr, error) { return net.ResolveUDPAddr("udp", addr) }
