package delta

import (
	"bytes"
	"strings"
	"testing"

	"pbxsync/internal/astgen"
)

// TestSmallEditStopsAtBlockMatch: a one-line edit's block match is a
// delta of ~100 bytes; dict-zstd and zstd cannot save more than that and
// cost more than the match (megabytes of tables), so Encode skips them
// and says why. With GoodEnough < 0 it tries them, and the default
// result is no more than a few bytes larger than the best of all.
func TestSmallEditStopsAtBlockMatch(t *testing.T) {
	g := astgen.New(3)
	base := g.Dialplan(400) // ~80 KB
	target := g.ChangeLine(base)
	d, res := encodeKind(t, 0, base, target, nil)
	if res.Kind != KindBlocks && res.Kind != KindBlocksZstd {
		t.Fatalf("kind %v, want a block delta (tried %v)", res.Kind, res.Tried)
	}
	skipped := map[Kind]bool{}
	for _, a := range res.Tried {
		if a.Size < 0 && strings.Contains(a.Note, "good enough") {
			skipped[a.Kind] = true
		}
	}
	if !skipped[KindDictZstd] || !skipped[KindZstd] {
		t.Fatalf("dict-zstd and zstd not skipped after a %d-byte block delta: tried %v", res.Size, res.Tried)
	}
	out, _, err := patchBytes(base, d, nil)
	if err != nil || !bytes.Equal(out, target) {
		t.Fatalf("patch: err %v, equal %v", err, bytes.Equal(out, target))
	}
	_, all := encodeKind(t, 0, base, target, &Options{GoodEnough: -1})
	tried := map[Kind]bool{}
	for _, a := range all.Tried {
		if !strings.Contains(a.Note, "good enough") {
			tried[a.Kind] = true // run, even if cut short
		}
	}
	if !tried[KindDictZstd] || !tried[KindZstd] {
		t.Fatalf("GoodEnough -1 did not try every encoding: %v", all.Tried)
	}
	if res.Size > all.Size+64 {
		t.Errorf("stopping early cost %d bytes over the best (%d, %v)", res.Size-all.Size, all.Size, all.Kind)
	}
}

// TestLargeEditKeepsSearching: an edit whose block delta is large (a
// rewritten half) still gets every encoding tried.
func TestLargeEditKeepsSearching(t *testing.T) {
	g := astgen.New(4)
	base := g.Dialplan(400)
	target := append(append([]byte{}, base[:len(base)/2]...), g.Dialplan(200)...)
	_, res := encodeKind(t, 0, base, target, nil)
	for _, a := range res.Tried {
		if strings.Contains(a.Note, "good enough") {
			t.Fatalf("a %d-byte delta of a %d-byte target ended the search: %v", res.Size, len(target), res.Tried)
		}
	}
}

// TestBlocksZstdLargeOpStream: an op stream over lazyZstdMax streams
// through the stream encoder and still patches exactly.
func TestBlocksZstdLargeOpStream(t *testing.T) {
	g := astgen.New(5)
	base := g.Dialplan(2000)
	target := append(g.Dialplan(1500), base[len(base)/2:]...) // > 64 KiB of literals
	d, res := encodeKind(t, KindBlocksZstd, base, target, nil)
	if res.Literal <= lazyZstdMax {
		t.Fatalf("only %d literal bytes; the test needs more than %d", res.Literal, lazyZstdMax)
	}
	out, _, err := patchBytes(base, d, nil)
	if err != nil || !bytes.Equal(out, target) {
		t.Fatalf("patch: err %v, equal %v", err, bytes.Equal(out, target))
	}
}

// TestIncompressibleGrowthStopsAtBlockMatch: a recording that grew by new
// random-looking content (the base is its prefix) is copies plus literals
// no zstd pass can shrink: Encode skips dict-zstd and zstd, which would
// spend a pass over the whole target for nothing, and the delta patches.
func TestIncompressibleGrowthStopsAtBlockMatch(t *testing.T) {
	g := astgen.New(6)
	base := g.Bytes(100 << 10)
	target := append(append([]byte{}, base...), g.Bytes(200<<10)...)
	d, res := encodeKind(t, 0, base, target, nil)
	skipped := map[Kind]bool{}
	for _, a := range res.Tried {
		if strings.Contains(a.Note, "incompressible") {
			skipped[a.Kind] = true
		}
	}
	if !skipped[KindDictZstd] || !skipped[KindZstd] {
		t.Fatalf("dict-zstd and zstd not skipped for incompressible new content: %v (%v)", res.Kind, res.Tried)
	}
	if res.Size > int64(len(target)-len(base))+1024 {
		t.Errorf("delta of %d bytes for %d new bytes", res.Size, len(target)-len(base))
	}
	out, _, err := patchBytes(base, d, nil)
	if err != nil || !bytes.Equal(out, target) {
		t.Fatalf("patch: err %v, equal %v", err, bytes.Equal(out, target))
	}
}
