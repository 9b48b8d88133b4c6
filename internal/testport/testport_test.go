package testport

import (
	"fmt"
	"net"
	"testing"
)

func TestUDPDistinctAndFree(t *testing.T) {
	var p Ports
	seen := map[int]bool{}
	for range 200 {
		port := p.UDP(t)
		if port < low || port >= high {
			t.Fatalf("port %d outside %d-%d", port, low, high-1)
		}
		if seen[port] {
			t.Fatalf("port %d handed out twice", port)
		}
		seen[port] = true
	}
}

func TestUDPSkipsPortsInUse(t *testing.T) {
	var p Ports
	held := p.UDP(t)
	pc, err := net.ListenPacket("udp", fmt.Sprintf("127.0.0.1:%d", held))
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	p.next = held // the next candidate is the port held above
	if got := p.UDP(t); got == held {
		t.Fatalf("handed out port %d, which is in use", got)
	}
}

// TestRandomIsBelowTheEphemeralRangeAndFree: Random's ports come from
// below the kernel's ephemeral range and can be bound; a port held by a
// socket is never handed out.
func TestRandomIsBelowTheEphemeralRangeAndFree(t *testing.T) {
	held, err := Random()
	if err != nil {
		t.Fatal(err)
	}
	pc, err := net.ListenPacket("udp", fmt.Sprintf("127.0.0.1:%d", held))
	if err != nil {
		t.Fatalf("port %d from Random cannot be bound: %v", held, err)
	}
	defer pc.Close()
	for range 500 {
		port, err := Random()
		if err != nil {
			t.Fatal(err)
		}
		if port < low || port >= high {
			t.Fatalf("port %d outside %d-%d", port, low, high-1)
		}
		if port == held {
			t.Fatalf("handed out port %d, which is in use", port)
		}
	}
}
