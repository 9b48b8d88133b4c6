package syncer

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/klauspost/compress/zstd"

	"pbxsync/hostmon"
	"pbxsync/internal/index"
	"pbxsync/internal/wire"
)

// TestPutFetchedOfferedItemMeta: content a source offers before its
// announcement comes with the mode and mtime its scan saw (admitOffered),
// and its staging file gets them by descriptor while it is fetched, so
// that the apply sets neither by path (a lookup in a staging directory of
// 100,000 entries each: ~0.8 s of an initial sync's apply). An offer of a
// source that predates them has neither: its staging file is not given
// mode 0 and the epoch, it is prestaged with no meta, and the apply gives
// it the announced mode and mtime. An announced item's metadata is set
// while it is fetched too.
func TestPutFetchedOfferedItemMeta(t *testing.T) {
	t.Parallel()
	ap := newApplier(t)
	filter, err := hostmon.NewFilter(nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	j := &job{a: &Agent{store: ap.Store}, applier: ap, filter: filter}
	ctx := context.Background()
	enc, err := zstd.NewWriter(nil)
	if err != nil {
		t.Fatal(err)
	}
	defer enc.Close()
	fetch := func(content string, it index.Item) stagedMeta {
		t.Helper()
		if err := j.putFetched(ctx, bytes.NewReader(enc.EncodeAll([]byte(content), nil)), it); err != nil {
			t.Fatal(err)
		}
		id, m, ok := ap.takePrestaged(it.Hash)
		if !ok {
			t.Fatalf("%s was not prestaged", it.Path)
		}
		ap.prestage(it.Hash, ap.stagingName(id), m)
		return m
	}
	const oldContent, offeredContent, announcedContent = "[old]\nexten => 0,1,NoOp()\n", "[offered]\nexten => 1,1,NoOp()\n", "[announced]\nexten => 2,1,NoOp()\n"
	old := ap.put(t, "etc/old.conf", oldContent, 0o640)
	full := ap.put(t, "etc/offered.conf", offeredContent, 0o640)
	announced := ap.put(t, "etc/announced.conf", announcedContent, 0o604)
	admit := func(oi wire.OfferItem) index.Item {
		t.Helper()
		it, ok := j.admitOffered(oi, &offeredDirs{})
		if !ok {
			t.Fatalf("%s is not admitted", oi.Path)
		}
		return it
	}
	// an older source offers path, hash and size only
	if m := fetch(oldContent, admit(wire.OfferItem{Path: old.Path, Hash: old.Hash[:], Size: old.Size})); m.set {
		t.Errorf("an item offered without meta got meta %+v by descriptor, want none", m)
	}
	offered := admit(wire.OfferItem{Path: full.Path, Hash: full.Hash[:], Size: full.Size, Mode: uint32(full.Mode), MTime: full.MTime})
	if m := fetch(offeredContent, offered); !m.set || m.mode != 0o640 || m.mtime != full.MTime {
		t.Errorf("an offered item's staging file got meta %+v, want mode 0640 and mtime %d", m, full.MTime)
	}
	if m := fetch(announcedContent, announced); !m.set || m.mode != 0o604 || m.mtime != announced.MTime {
		t.Errorf("an announced item's staging file got meta %+v, want mode 0604 and mtime %d", m, announced.MTime)
	}
	want := index.Of(old, full, announced, index.Item{Path: "etc", Kind: index.KindDir, Mode: 0o755})
	if err := ap.Apply(ctx, 1, Plan(index.Index{}, want), IndexLookup(want)); err != nil {
		t.Fatal(err)
	}
	for _, it := range []index.Item{old, full, announced} {
		fi, err := os.Lstat(filepath.Join(ap.Root, filepath.FromSlash(it.Path)))
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != it.Mode.Perm() || fi.ModTime().UnixNano() != it.MTime {
			t.Errorf("%s applied with mode %v mtime %d, want %v and %d", it.Path, fi.Mode().Perm(), fi.ModTime().UnixNano(), it.Mode.Perm(), it.MTime)
		}
	}
	for _, it := range []index.Item{old, full} {
		if _, _, ok := ap.takePrestaged(it.Hash); ok {
			t.Errorf("the apply did not take the prestaged file of %s", it.Path)
		}
	}
}
