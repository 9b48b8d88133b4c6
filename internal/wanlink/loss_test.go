package wanlink

import (
	"context"
	"encoding/binary"
	"fmt"
	"math"
	"net"
	"sync"
	"testing"

	"pbxsync/internal/testwait"
)

func TestLossDecides(t *testing.T) {
	seq := func(l *loss, n int) []bool {
		out := make([]bool, n)
		for i := range out {
			out[i] = l.drop()
		}
		return out
	}
	count := func(b []bool) int {
		n := 0
		for _, x := range b {
			if x {
				n++
			}
		}
		return n
	}
	for _, c := range []struct {
		name     string
		l        *loss
		min, max int // of 1000 drops
	}{
		{"nil drops nothing", nil, 0, 0},
		{"rate 0", newLoss(0, 1, 0), 0, 0},
		{"rate 1", newLoss(1, 1, 0), 1000, 1000},
		{"rate 0.1", newLoss(0.1, 1, 0), 70, 130},
		{"rate 0.5", newLoss(0.5, 9, 1), 450, 550},
	} {
		if n := count(seq(c.l, 1000)); n < c.min || n > c.max {
			t.Errorf("%s: %d of 1000 dropped, want %d..%d", c.name, n, c.min, c.max)
		}
	}
	a, b := seq(newLoss(0.3, 42, 0), 200), seq(newLoss(0.3, 42, 0), 200)
	if fmt.Sprint(a) != fmt.Sprint(b) {
		t.Error("the same seed and direction dropped different datagrams")
	}
	if c := seq(newLoss(0.3, 42, 1), 200); fmt.Sprint(a) == fmt.Sprint(c) {
		t.Error("the two directions of a link drop in lockstep")
	}
	if c := seq(newLoss(0.3, 43, 0), 200); fmt.Sprint(a) == fmt.Sprint(c) {
		t.Error("another seed dropped the very same datagrams")
	}
}

// sink starts a UDP server on 127.0.0.1 that records the numbers (first 4
// bytes) of the datagrams it receives.
func sink(t *testing.T) (*net.UDPAddr, func() map[uint32]bool) {
	t.Helper()
	c, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	got := map[uint32]bool{}
	done := make(chan struct{})
	go func() {
		defer close(done)
		buf := make([]byte, maxDatagram)
		for {
			n, _, err := c.ReadFromUDP(buf)
			if err != nil {
				return
			}
			if n >= 4 {
				mu.Lock()
				got[binary.BigEndian.Uint32(buf)] = true
				mu.Unlock()
			}
		}
	}()
	t.Cleanup(func() { c.Close(); <-done })
	return c.LocalAddr().(*net.UDPAddr), func() map[uint32]bool {
		mu.Lock()
		defer mu.Unlock()
		out := make(map[uint32]bool, len(got))
		for k := range got {
			out[k] = true
		}
		return out
	}
}

// sendThrough sends n numbered datagrams through a new link with loss and
// seed and returns the numbers that arrived and the link's counts.
func sendThrough(t *testing.T, n int, lossRate float64, seed uint64) (map[uint32]bool, Counts) {
	t.Helper()
	to, received := sink(t)
	l, err := Start(testwait.Context(t), Config{Upstream: to.String(), Loss: lossRate, Seed: seed})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	c := client(t, l.Addr())
	p := make([]byte, 100)
	for i := range n {
		binary.BigEndian.PutUint32(p, uint32(i))
		if _, err := c.Write(p); err != nil {
			t.Fatal(err)
		}
		if i%50 == 49 {
			// let the link read them: a full socket buffer drops outside the link
			testwait.Eventually(t, "the link read the datagrams", func() error {
				if c := l.Counts(); c.UpPackets+c.Lost < uint64(i+1) {
					return fmt.Errorf("read %d of %d", c.UpPackets+c.Lost, i+1)
				}
				return nil
			})
		}
	}
	var got map[uint32]bool
	testwait.Eventually(t, "every forwarded datagram arrived", func() error {
		got = received()
		if c := l.Counts(); uint64(len(got)) != c.UpPackets {
			return fmt.Errorf("%d arrived, link forwarded %d", len(got), c.UpPackets)
		}
		return nil
	})
	return got, l.Counts()
}

func TestLinkLosesTheSameDatagramsForASeed(t *testing.T) {
	t.Parallel()
	const n, rate = 400, 0.25
	first, c := sendThrough(t, n, rate, 7)
	if c.UpPackets+c.Lost != n || c.Dropped != 0 {
		t.Fatalf("counts %+v after %d datagrams", c, n)
	}
	if c.Up != c.UpPackets*100 {
		t.Errorf("Up %d bytes for %d datagrams of 100 bytes", c.Up, c.UpPackets)
	}
	if frac := float64(c.Lost) / n; math.Abs(frac-rate) > 0.08 {
		t.Errorf("lost %d of %d (%.2f), want about %.2f", c.Lost, n, frac, rate)
	}
	again, _ := sendThrough(t, n, rate, 7)
	if fmt.Sprint(first) != fmt.Sprint(again) {
		t.Error("the same seed lost other datagrams in a second run")
	}
	other, _ := sendThrough(t, n, rate, 8)
	if fmt.Sprint(first) == fmt.Sprint(other) {
		t.Error("another seed lost the very same datagrams")
	}
	none, c := sendThrough(t, 100, 0, 7)
	if len(none) != 100 || c.Lost != 0 {
		t.Errorf("loss 0: %d of 100 arrived, %d lost", len(none), c.Lost)
	}
}

func TestLinkLosesBothWays(t *testing.T) {
	t.Parallel()
	const n = 200
	l, err := Start(testwait.Context(t), Config{Upstream: echo(t).String(), Loss: 0.5, Seed: 3})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	c := client(t, l.Addr())
	for i := range n {
		c.Write([]byte{byte(i)})
		if i%50 == 49 {
			testwait.Eventually(t, "the link read the datagrams", func() error {
				if c := l.Counts(); c.UpPackets+c.Lost < uint64(i+1) {
					return fmt.Errorf("counts %+v after %d", c, i+1)
				}
				return nil
			})
		}
	}
	// Each datagram is lost on its way up, or forwarded, echoed and then
	// lost or forwarded on its way down.
	testwait.Eventually(t, "every datagram and echo accounted for", func() error {
		if got := l.Counts(); got.Lost+got.DownPackets != n {
			return fmt.Errorf("counts %+v", got)
		}
		return nil
	})
	got := l.Counts()
	lostUp, lostDown := n-got.UpPackets, got.UpPackets-got.DownPackets
	if lostUp == 0 || lostDown == 0 || got.Lost != lostUp+lostDown {
		t.Errorf("lost %d on the way up, %d on the way down (counts %+v)", lostUp, lostDown, got)
	}
}

func TestLinkRefusesBadLoss(t *testing.T) {
	for _, rate := range []float64{-0.1, 1.5, math.NaN()} {
		l, err := Start(context.Background(), Config{Upstream: "127.0.0.1:9", Loss: rate})
		if err == nil {
			l.Close()
			t.Errorf("loss %v accepted", rate)
		}
	}
}
