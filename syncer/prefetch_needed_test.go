package syncer

import (
	"bytes"
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"pbxsync/internal/config"
	"pbxsync/internal/index"
	"pbxsync/internal/store"
)

// TestPrefetchNeeded: a prefetch batch keeps the content the store lacks
// at paths where the tree has nothing, in a directory that exists or not
// (a missing directory is looked at once for the files below it; a
// present one never hides a file in it), and drops content the store
// holds (looked up in one pass, Store.Lacking) and paths the tree has.
func TestPrefetchNeeded(t *testing.T) {
	dir := t.TempDir()
	root := filepath.Join(dir, "tree")
	for _, d := range []string{"have", "have/deep"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for _, f := range []string{"have/a.conf", "have/deep/b.conf", "top.conf"} {
		if err := os.WriteFile(filepath.Join(root, f), []byte("x"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	st, err := store.Open(filepath.Join(dir, "store"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	stored, _, err := st.PutReader(context.Background(), bytes.NewReader([]byte("stored content")))
	if err != nil {
		t.Fatal(err)
	}
	j := &job{a: &Agent{store: st}, cfg: config.Job{Name: "j", Path: root}, log: slog.New(slog.DiscardHandler)}
	p := &prefetcher{j: j}
	n := 0
	item := func(path string) index.Item {
		n++
		return index.Item{Path: path, Kind: index.KindFile, Hash: index.Sum([]byte{byte(n)}), Size: 10}
	}
	items := []index.Item{
		item("have/a.conf"),      // the tree has it
		item("have/c.conf"),      // a present directory, no file
		item("have/deep/b.conf"), // the tree has it
		item("have/deep/d.conf"),
		item("new/x.conf"), // a missing directory
		item("new/y.conf"),
		item("new/sub/z.conf"), // below a missing directory
		item("top.conf"),       // the tree has it
		item("top2.conf"),
		{Path: "new/stored.conf", Kind: index.KindFile, Hash: stored, Size: 14}, // the store has it
	}
	var got []string
	for _, it := range p.needed(slices.Clone(items)) {
		got = append(got, it.Path)
	}
	want := []string{"have/c.conf", "have/deep/d.conf", "new/x.conf", "new/y.conf", "new/sub/z.conf", "top2.conf"}
	if !slices.Equal(got, want) {
		t.Errorf("needed kept %q, want %q", got, want)
	}
}
