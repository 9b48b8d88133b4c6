// Package testport hands tests and benchmarks UDP ports on 127.0.0.1 for
// agents they start later.
//
// Picking a port by binding ":0" and closing the socket races with every
// other socket opened meanwhile: the kernel hands the same ephemeral port
// to the next ":0" bind (a wanlink forwarder, another test's agent), and
// with tests running in parallel an agent started a few seconds later
// found its port taken. Ports here come from below Linux's default
// ephemeral range (32768-60999), which ":0" binds never use, one after
// the other in each process (starting at an offset from the process ID,
// so two test binaries running at once start far apart), and each is
// checked free when handed out.
package testport

import (
	"fmt"
	"net"
	"os"
	"sync"
	"testing"
)

const (
	low  = 20000 // first port handed out
	high = 32000 // below the kernel's ephemeral range
)

// Ports hands out ports; the zero value is ready to use.
type Ports struct {
	mu   sync.Mutex
	next int
}

// UDP returns a UDP port on 127.0.0.1 that no earlier call of this Ports
// returned (until the range wraps) and that was free a moment ago.
func (p *Ports) UDP(tb testing.TB) int {
	tb.Helper()
	port, err := p.Next()
	if err != nil {
		tb.Fatal(err)
	}
	return port
}

// Next is UDP for a program that is no test (the benchmarks, whose agents
// a test may start beside other tests' agents: their ":0" picks lost
// their ports to other sockets, and an agent exited at start).
func (p *Ports) Next() (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.next == 0 {
		p.next = low + os.Getpid()*97%(high-low)
	}
	for range high - low {
		port := p.next
		p.next++
		if p.next >= high {
			p.next = low
		}
		if free(port) {
			return port, nil
		}
	}
	return 0, fmt.Errorf("testport: no free UDP port in %d-%d", low, high-1)
}

// free reports whether port can be bound on 127.0.0.1 now.
func free(port int) bool {
	pc, err := net.ListenPacket("udp", fmt.Sprintf("127.0.0.1:%d", port))
	if err != nil {
		return false // in use
	}
	_ = pc.Close()
	return true
}
