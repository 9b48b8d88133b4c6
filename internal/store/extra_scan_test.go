package store

import (
	"fmt"
	"testing"
)

// TestPutScanStatesInChunks: a save of more than scanChunk paths (written
// in several transactions) stores every value, and removes what its roots
// no longer hold, as one transaction did.
func TestPutScanStatesInChunks(t *testing.T) {
	s := newTestStore(t)
	n := 2*scanChunk + 17
	set := map[string][]byte{}
	for i := range n {
		set[fmt.Sprintf("d%02d/f%06d", i%10, i)] = []byte(fmt.Sprint(i))
	}
	if err := s.PutScanStates("j", []string{""}, set); err != nil {
		t.Fatal(err)
	}
	count := func() map[string]string {
		got := map[string]string{}
		if err := s.ScanStates("j", func(p string, v []byte) error { got[p] = string(v); return nil }); err != nil {
			t.Fatal(err)
		}
		return got
	}
	if got := count(); len(got) != n || got["d03/f000013"] != "13" {
		t.Fatalf("%d scan states saved, want %d", len(got), n)
	}
	half := map[string][]byte{}
	for p, v := range set {
		if p < "d05" {
			half[p] = v
		}
	}
	if err := s.PutScanStates("j", []string{"d05", "d06", "d07", "d08", "d09"}, nil); err != nil {
		t.Fatal(err)
	}
	if got := count(); len(got) != len(half) {
		t.Fatalf("%d scan states after removing five directories, want %d", len(got), len(half))
	}
}
