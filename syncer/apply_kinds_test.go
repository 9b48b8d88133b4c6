package syncer

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"pbxsync/internal/index"
)

// TestApplyDirectoryBecomesAFile: one generation removes fd/inner.conf and
// the directory fd and writes a file fd. The directories its entries
// touched are fsynced afterwards; fd is a file by then, which is no error
// (its removal is made durable by the fsync of its parent). Before, the
// apply failed with "fsync fd: not a directory" and was rolled back.
func TestApplyDirectoryBecomesAFile(t *testing.T) {
	t.Parallel()
	a := newApplier(t)
	if err := os.MkdirAll(filepath.Join(a.Root, "fd"), 0o755); err != nil {
		t.Fatal(err)
	}
	old := a.put(t, "fd/inner.conf", "a directory first\n", 0o644)
	if err := os.WriteFile(filepath.Join(a.Root, "fd", "inner.conf"), []byte("a directory first\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	file := a.put(t, "fd", "now a file\n", 0o644)
	ops := []Op{
		{Kind: OpDelete, Path: "fd/inner.conf", prior: new(priorOf(old))},
		{Kind: OpRmdir, Path: "fd", prior: &Prior{Kind: index.KindDir}},
		{Kind: OpWrite, Path: "fd"},
	}
	if err := a.Apply(context.Background(), 1, ops, IndexLookup(index.Of(file))); err != nil {
		t.Fatalf("apply: %v", err)
	}
	b, err := os.ReadFile(filepath.Join(a.Root, "fd"))
	if err != nil || string(b) != "now a file\n" {
		t.Fatalf("fd is %q, %v; want the new file", b, err)
	}
	if _, ok, _ := a.Store.ReadJournal(a.Job); ok {
		t.Error("the journal stays after a successful apply")
	}
}
