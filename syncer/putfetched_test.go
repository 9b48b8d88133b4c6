package syncer

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/klauspost/compress/zstd"

	"pbxsync/internal/index"
)

// TestPutFetchedOfferedItemKeepsNoMeta: content the source offered before
// its announcement comes without mode and mtime (admitOffered); its
// staging file is not given mode 0 and the epoch by descriptor (which the
// apply then set again by path: two calls per file for nothing), it is
// prestaged with no meta, and the apply gives it the announced mode and
// mtime. An announced item's metadata is still set while it is fetched.
func TestPutFetchedOfferedItemKeepsNoMeta(t *testing.T) {
	t.Parallel()
	ap := newApplier(t)
	j := &job{a: &Agent{store: ap.Store}, applier: ap}
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
	const offeredContent, announcedContent = "[offered]\nexten => 1,1,NoOp()\n", "[announced]\nexten => 2,1,NoOp()\n"
	full := ap.put(t, "etc/offered.conf", offeredContent, 0o640)
	announced := ap.put(t, "etc/announced.conf", announcedContent, 0o604)
	// what admitOffered makes of an offer: path, hash and size only
	offered := index.Item{Path: full.Path, Kind: index.KindFile, Hash: full.Hash, Size: full.Size}
	if m := fetch(offeredContent, offered); m.set {
		t.Errorf("an offered item's staging file got meta %+v by descriptor, want none", m)
	}
	if m := fetch(announcedContent, announced); !m.set || m.mode != 0o604 || m.mtime != announced.MTime {
		t.Errorf("an announced item's staging file got meta %+v, want mode 0604 and mtime %d", m, announced.MTime)
	}
	want := index.Index{full.Path: full, announced.Path: announced, "etc": {Path: "etc", Kind: index.KindDir, Mode: 0o755}}
	if err := ap.Apply(ctx, 1, Plan(index.Index{}, want), IndexLookup(want)); err != nil {
		t.Fatal(err)
	}
	for _, it := range []index.Item{full, announced} {
		fi, err := os.Lstat(filepath.Join(ap.Root, filepath.FromSlash(it.Path)))
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != it.Mode.Perm() || fi.ModTime().UnixNano() != it.MTime {
			t.Errorf("%s applied with mode %v mtime %d, want %v and %d", it.Path, fi.Mode().Perm(), fi.ModTime().UnixNano(), it.Mode.Perm(), it.MTime)
		}
	}
	if _, _, ok := ap.takePrestaged(full.Hash); ok {
		t.Error("the apply did not take the prestaged file")
	}
}
