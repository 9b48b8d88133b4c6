package syncer

import (
	"fmt"
	"os"
	"testing"
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
