package syncer

import (
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"

	"pbxsync/hostmon"
	"pbxsync/internal/config"
	"pbxsync/internal/store"
	"pbxsync/internal/wire"
)

// TestInlineStopsAtTheBudget: the content inlined in an announcement is
// the changed files in order up to the first one that no longer fits in
// the budget; the files after it are not tried (each try read its blob
// back: every blob of a first generation of 100,000 files, to fill the
// budget's last bytes). The files alternate 40 KB and 1 KB of content that
// does not compress, 600 KB in all: trying on after the first miss
// inlined 1 KB files past it, and this fails.
func TestInlineStopsAtTheBudget(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	base := t.TempDir()
	root := filepath.Join(base, "tree")
	if err := os.MkdirAll(root, 0o755); err != nil {
		t.Fatal(err)
	}
	r := rand.New(rand.NewPCG(1, 2))
	for i := range 30 {
		size := 1 << 10
		if i%2 == 0 {
			size = 40 << 10
		}
		b := make([]byte, size)
		for k := range b {
			b[k] = byte(r.Uint32())
		}
		if err := os.WriteFile(filepath.Join(root, fmt.Sprintf("f%02d.wav", i)), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	j := firstGeneration(t, root, filepath.Join(base, "store"))
	msg := j.buildAnnounce(ctx, false)
	if len(msg.Inline) == 0 {
		t.Fatal("nothing inlined")
	}
	total := 0
	for i, in := range msg.Inline {
		it, _ := j.latest.Index.Get(fmt.Sprintf("f%02d.wav", i))
		want := it.Hash
		if wire.HashOf(in.Hash) != want {
			t.Fatalf("inline content %d is %x; want f%02d.wav's %s (the changed files in order, up to the first that does not fit)", i, in.Hash[:4], i, want.Short())
		}
		total += len(in.Data)
	}
	if total > inlineBudget {
		t.Fatalf("inlined %d bytes; the budget is %d", total, inlineBudget)
	}
	next, _ := j.latest.Index.Get(fmt.Sprintf("f%02d.wav", len(msg.Inline)))
	if next.Size+int64(total) <= inlineBudget {
		t.Fatalf("inlined %d files (%d bytes) and stopped before f%02d.wav of %d bytes, which fits", len(msg.Inline), total, len(msg.Inline), next.Size)
	}
}

// firstGeneration returns a source job over root with its first
// generation recorded in a store at dir.
func firstGeneration(tb testing.TB, root, dir string) *job {
	tb.Helper()
	ctx := context.Background()
	j := sourceJob(tb, root, dir)
	if err := j.scanAll(ctx); err != nil {
		tb.Fatal(err)
	}
	if err := j.newSourceGeneration(ctx, j.states.Index(), ""); err != nil {
		tb.Fatal(err)
	}
	return j
}

// BenchmarkFirstAnnouncement builds the announcement of a first
// generation of PBXSYNC_BENCH_FILES (20,000 by default) pjsip-like files
// (its inline part: the items are set apart, by announcementFor).
func BenchmarkFirstAnnouncement(b *testing.B) {
	root := b.TempDir()
	writeConfTree(b, root, 100, benchFiles(b, 20000))
	j := firstGeneration(b, root, b.TempDir())
	ctx := context.Background()
	for b.Loop() {
		if msg := j.buildAnnounce(ctx, false); len(msg.Inline) == 0 {
			b.Fatal("nothing inlined")
		}
	}
}

// sourceJob returns job j of node a over root, its source, with a store
// at dir and nothing scanned yet.
func sourceJob(tb testing.TB, root, dir string) *job {
	tb.Helper()
	st, err := store.Open(dir, nil)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = st.Close() })
	f, err := hostmon.NewFilter(nil, nil)
	if err != nil {
		tb.Fatal(err)
	}
	return &job{a: &Agent{store: st, node: "a"}, cfg: config.Job{Name: "j", Path: root, Source: "a"}, isSource: true,
		filter: f, log: slog.New(slog.DiscardHandler), bad: map[string]string{}, targets: map[string]*targetState{}}
}
