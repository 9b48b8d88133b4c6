package syncer

import (
	"context"
	"fmt"
	"io"
	"os"
	"sync/atomic"
	"testing"

	"pbxsync/hostmon"
	"pbxsync/internal/index"
)

// TestApplySettlesWhatItWrote: an apply hands Applier.Settled the state of
// every file it renamed into place, with the content's hash, and a scan
// that starts from those states trusts them all (reads none of the files),
// in a large batch (one syncfs) as in a small one; a file changed after it
// was settled is read again.
func TestApplySettlesWhatItWrote(t *testing.T) {
	t.Parallel()
	for _, large := range []bool{false, true} {
		t.Run(fmt.Sprint("large=", large), func(t *testing.T) {
			a := newApplier(t)
			if large {
				a.syncfsMin = 10
			}
			var ops []Op
			for d := range 3 {
				p := fmt.Sprintf("d%d", d)
				ops = append(ops, Op{Kind: OpMkdir, Path: p, Want: index.Item{Path: p, Kind: index.KindDir, Mode: fsMode(0o755)}})
			}
			want := map[string]index.Item{}
			for i := range 30 {
				it := a.put(t, fmt.Sprintf("d%d/f%02d.conf", i%3, i), fmt.Sprintf("[endpoint%d]\ntype=endpoint\n", i), 0o644)
				want[it.Path] = it
				ops = append(ops, Op{Kind: OpWrite, Path: it.Path, Want: it})
			}
			ops = PlanPaths(IndexLookup(nil), func(p string) (index.Item, bool) {
				for _, op := range ops {
					if op.Path == p {
						return op.Want, true
					}
				}
				return index.Item{}, false
			}, opPaths(ops))
			states := map[string]hostmon.FileState{}
			a.Settled = func(st hostmon.FileState) {
				if st.Path == "d1/f01.conf" {
					// changed after the rename (an append stamps the mtime):
					// not settled by the read-back
					f, err := os.OpenFile(a.Root+"/"+st.Path, os.O_APPEND|os.O_WRONLY, 0)
					if err == nil {
						f.WriteString("changed\n")
						f.Close()
					}
				}
				states[st.Path] = st
			}
			if err := a.Apply(context.Background(), 1, ops); err != nil {
				t.Fatal(err)
			}
			if len(states) != len(want) {
				t.Fatalf("settled %d files, want %d", len(states), len(want))
			}
			for p, it := range want {
				st := states[p]
				if st.Hash != it.Hash || st.Size != it.Size || st.MTime != it.MTime || st.CTime == 0 {
					t.Fatalf("settled %s as %+v, want a trusted state of %+v", p, st, it)
				}
			}
			var read atomic.Int64
			sink := func(r io.Reader) (index.Hash, int64, error) {
				read.Add(1)
				return index.HashReader(r)
			}
			d, err := hostmon.ScanTreeDelta(context.Background(), a.Root, nil, []string{"d0", "d1", "d2"}, states, nil, hostmon.WithSink(sink))
			if err != nil {
				t.Fatal(err)
			}
			// the file changed after its settling is read (its stat
			// differs from the settled one); none of the others
			if n := read.Load(); n != 1 {
				t.Errorf("the scan after the apply read %d files, want 1 (the one changed since)", n)
			}
			if d.States["d1/f01.conf"].Hash == want["d1/f01.conf"].Hash {
				t.Error("the changed file kept the applied content's hash")
			}
		})
	}
}
