package syncer

import (
	"bytes"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"pbxsync/hostmon"
	"pbxsync/internal/index"
	"pbxsync/internal/store"
)

// TestE2EEditsAfterScanStateSpilled: once both agents' scan states are
// out of memory (spilled after SpillIdle without a change), edits,
// deletions, new directories and a removed directory still sync, and the
// target takes none of the source's versions for a local edit.
func TestE2EEditsAfterScanStateSpilled(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	a, b := h.pair("")
	quick := func(o *Options) { o.SpillIdle = 50e6 }
	a.tune, b.tune = quick, quick
	for i := range 4200 { // above hostmon's spillMin
		a.write(fmt.Sprintf("d%02d/f%04d.conf", i%20, i), fmt.Sprintf("[%d]\n", i), 0o644)
	}
	a.start()
	b.start()
	converged(t, "initial sync", a, b)
	spilled := func(what string) {
		t.Helper()
		eventually(t, waitLimit, what, func() error {
			for _, n := range []*tnode{a, b} {
				if !n.logHas("moved the scan state out of memory") {
					return fmt.Errorf("%s has not spilled its scan state", n.name)
				}
			}
			return nil
		})
	}
	spilled("both scan states spilled")
	a.appendTo("d03/f0003.conf", "edited\n")
	converged(t, "an edit of a spilled path", a, b)
	if err := os.Remove(a.path("d04/f0004.conf")); err != nil {
		t.Fatal(err)
	}
	converged(t, "a deletion", a, b)
	a.write("newdir/sub/x.conf", "x\n", 0o600)
	converged(t, "a new directory", a, b)
	if err := os.RemoveAll(a.path("d05")); err != nil {
		t.Fatal(err)
	}
	converged(t, "a removed directory of 210 files", a, b)
	b.appendTo("d06/f0006.conf", "local edit\n")
	converged(t, "a local edit on the target overwritten", a, b)
	for _, n := range []*tnode{a, b} {
		if n.logHas("cannot read the scan state moved out of memory") {
			t.Errorf("%s could not read its spilled scan state", n.name)
		}
	}
}

// TestSpillIdleStatesBacksOff: a scan state that cannot be spilled (no
// room, no directory) is kept, warned about once, and tried again after
// idle spells that double; once it can be, it is.
func TestSpillIdleStatesBacksOff(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	st, err := store.Open(filepath.Join(dir, "store"), slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	var logged bytes.Buffer
	m := map[string]hostmon.FileState{}
	for i := range 5000 {
		p := fmt.Sprintf("f%04d", i)
		m[p] = hostmon.FileState{Item: index.Item{Path: p, Kind: index.KindFile}}
	}
	j := &job{a: &Agent{store: st, spillIdle: time.Second}, log: slog.New(slog.NewTextHandler(&logged, &slog.HandlerOptions{Level: slog.LevelDebug})),
		states: hostmon.NewStates(m)}
	gone := st.Dir() + ".away"
	if err := os.Rename(st.Dir(), gone); err != nil { // bbolt keeps its open file
		t.Fatal(err)
	}
	t0 := time.Unix(1e9, 0)
	tick := func(at time.Duration) { j.spillIdleStates(t.Context(), t0.Add(at)) }
	tick(0) // seen
	tries := func() int { return strings.Count(logged.String(), "cannot move the scan state out of memory") }
	for _, at := range []time.Duration{time.Second, 2 * time.Second, 3 * time.Second, 5 * time.Second, 6 * time.Second} {
		tick(at)
	}
	// tried at 1 s (then a wait of 2 s), 3 s (then 4 s), not yet at 5, 6 s
	if n := tries(); n != 2 {
		t.Fatalf("%d tries up to 6 s, want 2 (at 1 s and 3 s):\n%s", n, logged.String())
	}
	tick(7 * time.Second)
	if n := tries(); n != 3 {
		t.Fatalf("%d tries up to 7 s, want 3:\n%s", n, logged.String())
	}
	if warns := strings.Count(logged.String(), "level=WARN"); warns != 1 {
		t.Fatalf("%d warnings for failures in a row, want 1:\n%s", warns, logged.String())
	}
	if j.states.Spilled() {
		t.Fatal("spilled without a directory")
	}
	if err := os.Rename(gone, st.Dir()); err != nil {
		t.Fatal(err)
	}
	tick(14 * time.Second)
	if j.states.Spilled() {
		t.Fatal("tried before the wait of 8 s was over")
	}
	tick(15 * time.Second)
	if !j.states.Spilled() {
		t.Fatalf("not spilled once its directory is back:\n%s", logged.String())
	}
	if _, ok := j.states.Get("f0042"); !ok {
		t.Fatal("a spilled state is missing")
	}
}
