package main

import "testing"

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
