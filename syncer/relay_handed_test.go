package syncer

import (
	"testing"

	"pbxsync/internal/index"
	"pbxsync/internal/wire"
)

// TestMeshHandedKeepsTheIndexBefore: a relay serves on demand the content
// of an author's last two indexes it handed on, parts of one index adding
// up, and not what its own index holds.
func TestMeshHandedKeepsTheIndexBefore(t *testing.T) {
	hash := func(b byte) index.Hash { var h index.Hash; h[0] = b; return h }
	file := func(path string, b byte, size int64) wire.Item {
		h := hash(b)
		return wire.Item{Path: path, Kind: uint8(index.KindFile), Size: size, Hash: h[:]}
	}
	own := func(path string) (index.Item, bool) {
		if path == "mine.conf" {
			return index.Item{Path: path, Kind: index.KindFile, Hash: hash(9)}, true
		}
		return index.Item{}, false
	}
	var h meshHanded
	h.handOn("a", &wire.Announce{Time: 1, Items: []wire.Item{file("x.conf", 1, 10), file("mine.conf", 9, 5)}}, own)
	h.handOn("a", &wire.Announce{Time: 2, Items: []wire.Item{file("x.conf", 2, 20)}}, own)
	h.handOn("a", &wire.Announce{Time: 2, Items: []wire.Item{file("y.conf", 3, 30)}}, own) // a part of index 2
	h.handOn("b", &wire.Announce{Time: 1, Items: []wire.Item{file("z.conf", 4, 40)}}, own)
	for _, c := range []struct {
		b      byte
		author string
		size   int64
		ok     bool
	}{{1, "a", 10, true}, {2, "a", 20, true}, {3, "a", 30, true}, {4, "b", 40, true}, {9, "", 0, false}} {
		author, size, ok := h.lookup(hash(c.b))
		if author != c.author || size != c.size || ok != c.ok {
			t.Errorf("content %d: %q %d %v, want %q %d %v", c.b, author, size, ok, c.author, c.size, c.ok)
		}
	}
	h.handOn("a", &wire.Announce{Time: 3, Items: []wire.Item{file("x.conf", 5, 50)}}, own)
	if _, _, ok := h.lookup(hash(1)); ok {
		t.Error("content of a's index two before the last is still served")
	}
	for _, b := range []byte{2, 3, 5} {
		if _, _, ok := h.lookup(hash(b)); !ok {
			t.Errorf("content %d of a's last two indexes is not served", b)
		}
	}
}
