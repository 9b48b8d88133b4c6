package wanlink

import (
	"context"
	"errors"
	"fmt"
	"net"
	"testing"
	"time"

	"pbxsync/internal/testwait"
)

// echo starts a UDP echo server on 127.0.0.1 that stops with the test.
func echo(t *testing.T) *net.UDPAddr {
	t.Helper()
	c, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		buf := make([]byte, maxDatagram)
		for {
			n, from, err := c.ReadFromUDP(buf)
			if err != nil {
				return
			}
			c.WriteToUDP(buf[:n], from)
		}
	}()
	t.Cleanup(func() { c.Close(); <-done })
	return c.LocalAddr().(*net.UDPAddr)
}

func client(t *testing.T, to *net.UDPAddr) *net.UDPConn {
	t.Helper()
	c, err := net.DialUDP("udp", nil, to)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// roundTrip sends p and waits for its echo; it returns the round-trip time.
func roundTrip(t *testing.T, c *net.UDPConn, p []byte) time.Duration {
	t.Helper()
	start := time.Now()
	if _, err := c.Write(p); err != nil {
		t.Fatal(err)
	}
	c.SetReadDeadline(time.Now().Add(testwait.Limit()))
	buf := make([]byte, maxDatagram)
	n, err := c.Read(buf)
	if err != nil {
		t.Fatalf("no echo through the link: %v", err)
	}
	if string(buf[:n]) != string(p) {
		t.Fatalf("echo %q, want %q", buf[:n], p)
	}
	return time.Since(start)
}

func TestLinkDelaysAndCountsEachWay(t *testing.T) {
	const delay = 25 * time.Millisecond
	l, err := Start(testwait.Context(t), Config{Upstream: echo(t).String(), Delay: delay})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	c := client(t, l.Addr())
	var sent uint64
	for i := range 5 {
		p := []byte(fmt.Sprintf("datagram %d %s", i, make([]byte, i*1000)))
		// Each way is delayed, so a round trip takes at least twice the delay.
		if rtt := roundTrip(t, c, p); rtt < 2*delay {
			t.Errorf("round trip %v through a link with %v each way", rtt, delay)
		}
		sent += uint64(len(p))
	}
	got := l.Counts()
	want := Counts{Up: sent, Down: sent, UpPackets: 5, DownPackets: 5}
	if got != want {
		t.Errorf("counts %+v, want %+v", got, want)
	}
	if got.Total() != 2*sent {
		t.Errorf("total %d, want %d", got.Total(), 2*sent)
	}
}

func TestLinkKeepsOrder(t *testing.T) {
	l, err := Start(testwait.Context(t), Config{Upstream: echo(t).String(), Delay: 5 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	c := client(t, l.Addr())
	for i := range 50 {
		c.Write([]byte{byte(i)})
	}
	buf := make([]byte, 16)
	c.SetReadDeadline(time.Now().Add(testwait.Limit()))
	for i := range 50 {
		n, err := c.Read(buf)
		if err != nil {
			t.Fatalf("datagram %d: %v", i, err)
		}
		if n != 1 || buf[0] != byte(i) {
			t.Fatalf("datagram %d arrived as %v", i, buf[:n])
		}
	}
}

func TestLinkBoundsSessions(t *testing.T) {
	l, err := Start(testwait.Context(t), Config{Upstream: echo(t).String(), MaxSessions: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	first, second := client(t, l.Addr()), client(t, l.Addr())
	roundTrip(t, first, []byte("first"))
	second.Write([]byte("second"))
	testwait.Eventually(t, "the second client's datagram dropped", func() error {
		if c := l.Counts(); c.Dropped != 1 || c.UpPackets != 1 {
			return fmt.Errorf("counts %+v", c)
		}
		return nil
	})
	roundTrip(t, first, []byte("first again")) // the first session still works
}

func TestLinkStopsWithItsContext(t *testing.T) {
	ctx, cancel := context.WithCancel(testwait.Context(t))
	l, err := Start(ctx, Config{Upstream: echo(t).String(), Delay: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	c := client(t, l.Addr())
	c.Write([]byte("held for an hour")) // a session with a datagram in flight
	testwait.Eventually(t, "the datagram queued", func() error {
		if l.Counts().UpPackets != 1 {
			return errors.New("not yet")
		}
		return nil
	})
	cancel()
	testwait.Chan(t, "the link stopped", l.Done())
	stopped := make(chan struct{})
	go func() { l.Close(); close(stopped) }()
	testwait.Chan(t, "Close returned (every goroutine ended)", stopped)
	if _, err := net.ListenUDP("udp", l.Addr()); err != nil {
		t.Errorf("the link's address is still taken after Close: %v", err)
	}
}

func TestLinkRefusesBadConfig(t *testing.T) {
	for _, cfg := range []Config{{Upstream: "nowhere:xyz"}, {Upstream: "127.0.0.1:9", Delay: -time.Second}} {
		if l, err := Start(context.Background(), cfg); err == nil {
			l.Close()
			t.Errorf("Start(%+v) accepted", cfg)
		}
	}
}
