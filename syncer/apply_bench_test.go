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
		want := index.New(0)
		for d := range dirs {
			p := fmt.Sprintf("d%02d", d)
			ops = append(ops, Op{Kind: OpMkdir, Path: p})
			want.Set(index.Item{Path: p, Kind: index.KindDir, Mode: fsMode(0o755)})
		}
		for _, it := range items {
			ops = append(ops, Op{Kind: OpWrite, Path: it.Path})
			want.Set(it)
		}
		if err := a.Apply(context.Background(), uint64(n+1), ops, IndexLookup(want)); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkApplyReplace measures Applier.Apply of one generation that
// replaces 500 small files of one directory and removes 100 others: as a
// push target applies it (plain renames) and as a mesh member does
// (guarded: each rename swaps and checks the file it replaces, each
// delete sets the file aside and checks it; guardRun). Each iteration
// applies to a new copy of the tree, made outside the timer.
func BenchmarkApplyReplace(b *testing.B) {
	const files, dels = 500, 100
	for _, guarded := range []bool{false, true} {
		name := "plain"
		if guarded {
			name = "guarded"
		}
		b.Run(name, func(b *testing.B) {
			a := newApplier(b)
			var ops []Op
			want := index.New(0)
			for i := range dels {
				p := fmt.Sprintf("d/gone%04d.conf", i)
				ops = append(ops, Op{Kind: OpDelete, Path: p, prior: &Prior{Kind: index.KindFile}})
			}
			for i := range files {
				p := fmt.Sprintf("d/f%04d.conf", i)
				it := a.put(b, p, fmt.Sprintf("[endpoint%d]\ntype=endpoint\ncontext=from-external\n", i), 0o644)
				ops = append(ops, Op{Kind: OpWrite, Path: p, prior: &Prior{Kind: index.KindFile}})
				want.Set(it)
			}
			base := b.TempDir()
			b.ResetTimer()
			for n := range b.N {
				b.StopTimer()
				root := filepath.Join(base, fmt.Sprint(n))
				if err := os.MkdirAll(filepath.Join(root, "d"), 0o755); err != nil {
					b.Fatal(err)
				}
				for _, op := range ops {
					if err := os.WriteFile(filepath.Join(root, op.Path), []byte("old\n"), 0o644); err != nil {
						b.Fatal(err)
					}
				}
				a.Root = root
				a.guard = nil
				if guarded {
					g, err := newPathGuard(root, opPaths(ops))
					if err != nil {
						b.Fatal(err)
					}
					a.guard = g
				}
				b.StartTimer()
				if err := a.Apply(context.Background(), uint64(n+1), ops, IndexLookup(want)); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
