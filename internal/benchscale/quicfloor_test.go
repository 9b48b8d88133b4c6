package main

import (
	"fmt"
	"os"
	"testing"
)

// TestMain makes the test binary the receiving end of quicFloorApart when
// it starts itself for it, as the benchmark's binary does.
func TestMain(m *testing.M) {
	if os.Getenv(quicReceiverEnv) != "" {
		if err := runQuicReceiver(os.Stdout); err != nil {
			fmt.Fprintln(os.Stderr, "quic receiver:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

func TestQuicFloorMovesEveryByte(t *testing.T) {
	// an odd size: the last write is a part of the buffer
	const n = 3<<20 + 12345
	d, err := quicFloor(t.Context(), n)
	if err != nil {
		t.Fatal(err)
	}
	if d <= 0 {
		t.Fatalf("quicFloor took %v", d)
	}
	t.Logf("%d bytes over quic-go alone: %v", n, d)
}

// TestQuicFloorApartMovesEveryByte: the receiver in a process of its own
// counts every byte sent (quicFloorApart fails on any other count).
func TestQuicFloorApartMovesEveryByte(t *testing.T) {
	const n = 3<<20 + 12345
	d, err := quicFloorApart(t.Context(), n)
	if err != nil {
		t.Fatal(err)
	}
	if d <= 0 {
		t.Fatalf("quicFloorApart took %v", d)
	}
	t.Logf("%d bytes over quic-go between two processes: %v", n, d)
}
