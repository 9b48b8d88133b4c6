package syncer

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"sort"
	"strings"
	"testing"
	"time"

	"pbxsync/internal/index"
)

// TestRollbackRefusesDamagedBlob: a flipped byte in a stored blob is
// detected; rollback to the generation that needs it refuses and says so,
// and neither the source nor the target changes.
func TestRollbackRefusesDamagedBlob(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	a, b := h.pair("")
	// Large enough (and incompressible enough) to be a blob file rather
	// than a value in the store's database, so the test can damage it.
	first0 := "exten => 100,1,Answer()\n" + noise(200<<10)
	a.write("extensions.conf", first0, 0o644)
	a.start()
	b.start()
	converged(t, "first version", a, b)
	gens, err := a.a().Store().Generations("conf")
	if err != nil || len(gens) == 0 {
		t.Fatalf("generations: %v %v", gens, err)
	}
	first := gens[len(gens)-1].Number
	a.write("extensions.conf", "exten => 100,1,Answer()\nexten => 101,1,Hangup()\n", 0o644)
	converged(t, "second version", a, b)

	blob := a.a().Store().BlobPath(index.Sum([]byte(first0)))
	raw, err := os.ReadFile(blob)
	if err != nil {
		t.Fatal(err)
	}
	raw[len(raw)/2] ^= 0x40
	if err := os.WriteFile(blob, raw, 0o644); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	defer cancel()
	_, err = a.a().Rollback(ctx, "conf", first, false)
	if err == nil || !strings.Contains(err.Error(), "damaged") || !strings.Contains(err.Error(), "extensions.conf") {
		t.Fatalf("rollback over a damaged blob: err = %v; want a refusal naming the file and the damage", err)
	}
	for _, n := range []*tnode{a, b} {
		if got := string(n.read("extensions.conf")); !strings.Contains(got, "101") {
			t.Errorf("%s changed after a refused rollback: %q", n.name, got)
		}
	}
}

// noise returns n bytes of random comment lines, which zstd cannot shrink
// much.
func noise(n int) string {
	var b strings.Builder
	r := rand.New(rand.NewPCG(uint64(n), 1))
	for b.Len() < n {
		fmt.Fprintf(&b, "; %016x%016x%016x\n", r.Uint64(), r.Uint64(), r.Uint64())
	}
	return b.String()
}

// BenchmarkRollback100 measures restoring 100 files (mixed sizes, 1–64
// KiB) from the store, byte-exact, with staging, journal, renames and
// fsyncs: the time `pbxsync rollback` or a failed check costs. Reports the
// median of the iterations.
func BenchmarkRollback100(b *testing.B) {
	a := newApplier(b)
	ctx := context.Background()
	gen := func(v int) index.Index {
		x := index.New(0)
		for i := 0; i < 100; i++ {
			size := 1024 << (i % 7)
			line := fmt.Sprintf("v%d file %d\n", v, i)
			content := strings.Repeat(line, size/len(line)+1)[:size]
			it := a.put(b, fmt.Sprintf("f%03d.conf", i), content, 0o644)
			x.Set(it)
		}
		return x
	}
	good, bad := gen(1), gen(2)
	if err := a.Apply(ctx, 1, Plan(index.Index{}, good), IndexLookup(good)); err != nil {
		b.Fatal(err)
	}
	var took []time.Duration
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		if err := a.Apply(ctx, 2, Plan(good, bad), IndexLookup(bad)); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		start := time.Now()
		if err := a.Apply(ctx, 3, Plan(bad, good), IndexLookup(good)); err != nil {
			b.Fatal(err)
		}
		took = append(took, time.Since(start))
	}
	sort.Slice(took, func(i, j int) bool { return took[i] < took[j] })
	b.ReportMetric(float64(took[len(took)/2].Microseconds())/1000, "ms-median/rollback")
}
