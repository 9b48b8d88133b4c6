package syncer

import (
	"context"
	"path/filepath"
	"testing"

	"pbxsync/internal/procmaps"
)

// TestFirstAnnouncementDropsMappedPages: building the announcement of a
// first generation of 20,000 small files reads back the hundreds of blobs
// its inline part holds, each looked up at a random place of the blob
// locations; the pages of meta.db that mapped are dropped when it is
// built (1.75 MiB here without, ~10 MiB at 100,000 files: the source's
// peak RSS). It also drops them every inlineReleaseEvery blobs as it
// goes, which bounds what the pass maps at 100,000 files; in this small
// store 16 lookups map most of the locations already, so this test does
// not see that.
func TestFirstAnnouncementDropsMappedPages(t *testing.T) {
	root := filepath.Join(t.TempDir(), "tree")
	writeConfTree(t, root, 100, 20000)
	dir := filepath.Join(t.TempDir(), "store")
	j := firstGeneration(t, root, dir)
	if err := j.a.store.ReleaseMapped(); err != nil {
		t.Fatal(err)
	}
	db := filepath.Join(dir, "meta.db")
	msg := j.buildAnnounce(context.Background(), false)
	if len(msg.Inline) < 4*inlineReleaseEvery {
		t.Fatalf("%d files inlined; the test wants more than %d", len(msg.Inline), 4*inlineReleaseEvery)
	}
	n, err := procmaps.Resident(db)
	if err != nil {
		t.Fatal(err)
	}
	if n > 256<<10 {
		t.Errorf("%d KiB of meta.db resident after building an announcement that inlined %d files; want at most 256 KiB", n>>10, len(msg.Inline))
	}
}
