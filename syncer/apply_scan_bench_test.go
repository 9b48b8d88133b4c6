package syncer

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"pbxsync/hostmon"
	"pbxsync/internal/index"
)

// BenchmarkApplyInitial measures what the apply phase of an initial sync
// costs a target: Applier.Apply of PBXSYNC_BENCH_FILES new files (20,000
// by default) in 100 new directories, each prestaged (as the fetch leaves
// them), then the rescan of what it wrote, which starts from the states
// the apply settled (Applier.Settled). Each iteration applies into a new
// root.
//
//	go test -run '^$' -bench ApplyInitial -benchtime 3x ./syncer/
func BenchmarkApplyInitial(b *testing.B) { benchApplyNew(b, true) }

// BenchmarkApplyFromStore is BenchmarkApplyInitial with nothing
// prestaged: the stage step reads every file's content from the store, as
// an apply does that no fetch ran ahead of (a rollback or a restore of a
// large generation, a retry after a full disk, content the store held).
//
//	go test -run '^$' -bench ApplyFromStore -benchtime 3x ./syncer/
func BenchmarkApplyFromStore(b *testing.B) { benchApplyNew(b, false) }

func benchApplyNew(b *testing.B, prestage bool) {
	files := benchFiles(b, 20000)
	const dirs = 100
	a := newApplier(b)
	var items []index.Item
	for i := range files {
		items = append(items, a.put(b, fmt.Sprintf("site%03d/endpoint%05d.conf", i%dirs, i), fmt.Sprintf("[%d]\ntype=endpoint\ncontext=from-internal\nauth=%d\n", i, i), 0o644))
	}
	base := b.TempDir()
	ctx := context.Background()
	b.ResetTimer()
	for n := range b.N {
		b.StopTimer()
		root := filepath.Join(base, fmt.Sprint(n))
		if err := os.Mkdir(root, 0o755); err != nil {
			b.Fatal(err)
		}
		a.Root = root
		var ops []Op
		var paths []string
		want := index.New(0)
		for d := range dirs {
			p := fmt.Sprintf("site%03d", d)
			ops = append(ops, Op{Kind: OpMkdir, Path: p})
			want.Set(index.Item{Path: p, Kind: index.KindDir, Mode: fsMode(0o755)})
			paths = append(paths, p)
		}
		for _, it := range items {
			ops = append(ops, Op{Kind: OpWrite, Path: it.Path})
			want.Set(it)
			if !prestage {
				continue
			}
			// prestaged, as the fetch leaves them
			f, name, err := a.newStagingFile(0o600)
			if err != nil {
				b.Fatal(err)
			}
			rc, err := a.Store.Open(ctx, it.Hash)
			if err != nil {
				b.Fatal(err)
			}
			if _, err := f.ReadFrom(rc); err != nil {
				b.Fatal(err)
			}
			rc.Close()
			meta := setStagedMeta(f, it, false)
			f.Close()
			a.prestage(it.Hash, name, meta)
		}
		states := map[string]hostmon.FileState{}
		a.Settled = func(st hostmon.FileState) { states[st.Path] = st }
		b.StartTimer()
		if err := a.Apply(ctx, uint64(n+1), ops, IndexLookup(want)); err != nil {
			b.Fatal(err)
		}
		d, err := hostmon.ScanTreeDelta(ctx, root, nil, paths, states, nil)
		if err != nil {
			b.Fatal(err)
		}
		if len(d.States) != files+dirs {
			b.Fatalf("rescan found %d paths, want %d", len(d.States), files+dirs)
		}
	}
}
