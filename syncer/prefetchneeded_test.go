package syncer

import (
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"pbxsync/internal/config"
	"pbxsync/internal/index"
)

// TestPrefetchNeeded: the prefetch drops the content the store holds and
// the paths where the tree has something, whether their directory exists
// or not, and keeps the rest (below an absent directory without looking
// up each file).
func TestPrefetchNeeded(t *testing.T) {
	t.Parallel()
	ap := newApplier(t)
	if err := os.MkdirAll(filepath.Join(ap.Root, "have"), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"have/x.conf", "top.conf"} {
		if err := os.WriteFile(filepath.Join(ap.Root, filepath.FromSlash(f)), []byte("local\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	stored := ap.put(t, "new/stored.conf", "stored already\n", 0o644)
	j := &job{a: &Agent{store: ap.Store}, cfg: config.Job{Name: "conf", Path: ap.Root}, log: slog.New(slog.DiscardHandler)}
	p := &prefetcher{j: j}
	item := func(path string, n byte) index.Item {
		var h index.Hash
		h[0], h[1] = 0xee, n
		return index.Item{Path: path, Kind: index.KindFile, Hash: h, Size: 10}
	}
	items := []index.Item{item("have/x.conf", 1), item("have/y.conf", 2), item("new/a.conf", 3), item("new/deep/b.conf", 4),
		item("top.conf", 5), item("other.conf", 6), stored}
	var got []string
	for _, it := range p.needed(items) {
		got = append(got, it.Path)
	}
	if want := []string{"have/y.conf", "new/a.conf", "new/deep/b.conf", "other.conf"}; !slices.Equal(got, want) {
		t.Errorf("needed %q, want %q", got, want)
	}
}
