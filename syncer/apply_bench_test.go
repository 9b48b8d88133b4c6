package syncer

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"pbxsync/internal/index"
)

// BenchmarkApplyBatch measures Applier.Apply of one generation that adds
// 1,000 small files in 20 new directories (the shape of an initial sync):
// staging, the fsyncs that make the batch durable, the journal, the
// renames and the directory fsyncs. Each iteration applies into a new
// root; the content is in the store beforehand.
func BenchmarkApplyBatch(b *testing.B) {
	const files, dirs = 1000, 20
	a := newApplier(b)
	var items []index.Item
	for i := range files {
		items = append(items, a.put(b, fmt.Sprintf("d%02d/f%04d.conf", i%dirs, i), fmt.Sprintf("[endpoint%d]\ntype=endpoint\ncontext=from-internal\n", i), 0o644))
	}
	base := b.TempDir()
	b.ResetTimer()
	for n := range b.N {
		root := filepath.Join(base, fmt.Sprint(n))
		if err := os.Mkdir(root, 0o755); err != nil {
			b.Fatal(err)
		}
		a.Root = root
		var ops []Op
		for d := range dirs {
			p := fmt.Sprintf("d%02d", d)
			ops = append(ops, Op{Kind: OpMkdir, Path: p, Want: index.Item{Path: p, Kind: index.KindDir, Mode: fsMode(0o755)}})
		}
		for _, it := range items {
			ops = append(ops, Op{Kind: OpWrite, Path: it.Path, Want: it})
		}
		if err := a.Apply(context.Background(), uint64(n+1), ops); err != nil {
			b.Fatal(err)
		}
	}
}
