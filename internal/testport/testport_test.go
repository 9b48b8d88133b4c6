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
