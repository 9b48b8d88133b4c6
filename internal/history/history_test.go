package history

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"pbxsync/internal/index"
	"pbxsync/internal/store"
)

// TestCompareAndList: Compare names each kind of change, diffs content
// within the bounds and says why it skipped the rest; List is [] for a
// job without generations.
func TestCompareAndList(t *testing.T) {
	st, err := store.Open(filepath.Join(t.TempDir(), "store"), slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	ctx := context.Background()
	put := func(p, content string, mode os.FileMode) index.Item {
		h, n, err := st.PutReader(ctx, strings.NewReader(content))
		if err != nil {
			t.Fatal(err)
		}
		return index.Item{Path: p, Kind: index.KindFile, Size: n, Mode: mode, Hash: h}
	}
	g1 := index.New(0)
	for i := range 3 {
		it := put(fmt.Sprintf("f%d.conf", i), fmt.Sprintf("old %d\n", i), 0o644)
		g1.Set(it)
	}
	g1.Set(put("gone.conf", "x\n", 0o644))
	g1.Set(put("mode.conf", "m\n", 0o644))
	g1.Set(put("big.conf", strings.Repeat("b", 100), 0o644))
	g2 := g1.Clone()
	for i := range 3 {
		it := put(fmt.Sprintf("f%d.conf", i), fmt.Sprintf("new %d\n", i), 0o644)
		g2.Set(it)
	}
	g2.Delete("gone.conf")
	g2.Set(put("new.conf", "n\n", 0o644))
	m, _ := g2.Get("mode.conf")
	m.Mode = 0o600
	g2.Set(m)
	g2.Set(put("big.conf", strings.Repeat("c", 100), 0o644))
	for _, x := range []index.Index{g1, g2} {
		if _, err := st.AddGeneration(ctx, &store.Generation{Job: "conf", Origin: "a", State: store.StateGood, Index: x}); err != nil {
			t.Fatal(err)
		}
	}

	changes, err := Compare(ctx, st, "conf", 1, 2, Options{Content: true, MaxBytes: 50, MaxFiles: 3})
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]Change{}
	for _, c := range changes {
		got[c.Path] = c
	}
	if len(changes) != 7 {
		t.Fatalf("%d changes, want 7: %+v", len(changes), changes)
	}
	for p, kind := range map[string]string{"gone.conf": Removed, "new.conf": Added, "mode.conf": ModeOnly, "f0.conf": Modified, "big.conf": Modified} {
		if got[p].Kind != kind {
			t.Errorf("%s: kind %q, want %q", p, got[p].Kind, kind)
		}
	}
	if c := got["mode.conf"]; c.From != "0644" || c.To != "0600" || c.Diff != "" {
		t.Errorf("mode change: %+v", c)
	}
	if c := got["big.conf"]; c.Diff != "" || !strings.Contains(c.Skipped, "larger than 50 bytes") {
		t.Errorf("big file: %+v", c)
	}
	diffed, skipped := 0, 0
	for _, c := range changes {
		switch {
		case c.Diff != "":
			diffed++
		case strings.Contains(c.Skipped, "first 3 files"):
			skipped++
		}
	}
	if diffed != 3 || skipped != 2 {
		t.Errorf("%d diffed and %d skipped for the file bound, want 3 and 2: %+v", diffed, skipped, changes)
	}
	if c := got["f0.conf"]; c.Diff != "" && !strings.Contains(c.Diff, "-old 0\n+new 0\n") {
		t.Errorf("f0 diff: %q", c.Diff)
	}
	if c := got["new.conf"]; c.Diff != "" && !strings.Contains(c.Diff, "+n\n") {
		t.Errorf("new.conf diff: %q", c.Diff)
	}
	if _, err := Compare(ctx, st, "conf", 1, 9, Options{}); err == nil || !strings.Contains(err.Error(), "generation 9 of job conf") {
		t.Errorf("missing generation: %v", err)
	}
	gens, err := List(st, "nothing")
	if err != nil || gens == nil || len(gens) != 0 {
		t.Errorf("List of a job without generations: %#v %v", gens, err)
	}
}
