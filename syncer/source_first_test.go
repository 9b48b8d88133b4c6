package syncer

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"pbxsync/internal/index"
)

// TestFirstGenerationStoresWhatTheScanDidNot: a source's first generation
// is recorded without looking its content up first (the scan that read it
// stored it); content no scan stored (here: a scan that was not a
// source's, so it had no sink) makes the record refuse it, and the
// generation is recorded once that content is stored.
func TestFirstGenerationStoresWhatTheScanDidNot(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	root := t.TempDir()
	for _, p := range []string{"a.conf", "sub/b.conf", "sub/c.conf"} {
		if err := os.MkdirAll(filepath.Dir(filepath.Join(root, p)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(root, p), []byte("content of "+p), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	j := sourceJob(t, root, t.TempDir())
	j.isSource = false // its scan stores nothing
	st := j.a.store
	if err := j.scanAll(ctx); err != nil {
		t.Fatal(err)
	}
	local := j.states.Index()
	var hashes []index.Hash
	for _, it := range local.All() {
		if it.Kind == index.KindFile {
			hashes = append(hashes, it.Hash)
		}
	}
	if len(hashes) != 3 || len(st.Missing(hashes)) != 3 {
		t.Fatalf("after a scan without a sink the store lacks %d of %d files' content, want all 3", len(st.Missing(hashes)), len(hashes))
	}
	j.isSource = true
	if err := j.newSourceGeneration(ctx, local, ""); err != nil {
		t.Fatal(err)
	}
	if j.latest == nil || j.latest.Number != 1 {
		t.Fatalf("newest generation %+v, want number 1", j.latest)
	}
	if miss := st.Missing(hashes); len(miss) != 0 {
		t.Errorf("the store lacks %d blobs of the recorded first generation", len(miss))
	}
	g, err := st.Generation("j", 1)
	if err != nil {
		t.Fatal(err)
	}
	if g.Index.Digest() != local.Digest() {
		t.Errorf("generation 1 holds %d items, want the scan's %d", g.Index.Len(), local.Len())
	}
}
