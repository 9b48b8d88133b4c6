package syncer

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"testing"

	"pbxsync/internal/index"
	"pbxsync/internal/store"
)

// TestFirstSyncTakesWhatTheTreeHolds: a target whose tree already holds
// the source's files (copied there before the agent ran) fetches none of
// them: its store takes them from the tree, and only the file it lacks
// comes over a transfer stream.
func TestFirstSyncTakesWhatTheTreeHolds(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	a, b := h.pair("")
	const files = 12
	var hashes []index.Hash
	for i := range files {
		// 100 KiB that does not compress: none rides inline
		content := randBytes(uint64(i+1), 100<<10)
		hashes = append(hashes, index.Sum(content))
		name := fmt.Sprintf("sounds/custom/f%02d.gsm", i)
		a.write(name, string(content), 0o644)
		b.write(name, string(content), 0o644)
	}
	a.write("sounds/custom/new.gsm", string(randBytes(99, 100<<10)), 0o644)
	a.start()
	b.start()
	converged(t, "initial sync over a tree that holds the files", a, b)
	waitGood(t, b, "conf")
	if err := diffTrees(a.tree, b.tree); err != nil {
		t.Fatal(err)
	}
	js := b.a().Status().Jobs[0]
	if js.Fetches != 1 {
		t.Errorf("the target fetched %d contents; want 1 (the file its tree lacked)", js.Fetches)
	}
	for i, hs := range hashes {
		if !b.a().store.Has(hs) {
			t.Errorf("the target's store lacks f%02d.gsm, which its tree held", i)
		}
	}
}

// TestE2EFailedCheckTakesBackAWholeGeneration: a generation that adds a
// directory, removes a file and fails its check is rolled back whole:
// the directory goes and the file comes back, by the rollback itself.
// (The rescan of what an apply wrote runs after the answer to the source;
// a rollback that planned without it took the removed file for still
// there, and the file came back only as a repair of a "local change".)
func TestE2EFailedCheckTakesBackAWholeGeneration(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	a, b := h.pair("[[job.rule]]\nmatch = [\"*.conf\"]\ncheck = \"! grep -rq BROKEN .\"\n")
	a.write("extensions.conf", seedExtensions, 0o644)
	a.write("sip.conf", "[general]\n", 0o644)
	a.start()
	b.start()
	converged(t, "initial sync", a, b)

	// one generation: the source makes it of what it finds as it starts
	a.stop()
	a.write("pjsip.d/trunk.conf", "[trunk]\ntype=BROKEN\n", 0o644)
	if err := os.Remove(a.path("sip.conf")); err != nil {
		t.Fatal(err)
	}
	a.start()
	eventually(t, waitLimit, "the target marks the generation bad and takes it back", func() error {
		js, _ := b.jobStatus("conf")
		if js.State != string(store.StateBad) {
			return fmt.Errorf("target job state %q", js.State)
		}
		if _, err := os.Lstat(b.path("pjsip.d")); !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("after the rollback pjsip.d is still there (%v)", err)
		}
		return nil
	})
	if got := b.read("sip.conf"); string(got) != "[general]\n" {
		t.Fatalf("after the rollback sip.conf holds %q", got)
	}
	if got := b.read("extensions.conf"); string(got) != seedExtensions {
		t.Fatalf("after the rollback extensions.conf holds\n%s", got)
	}
	// a good change after it: the target's job has taken every event the
	// rollback left by the time it applies this one
	a.write("sip.conf", "[general]\nudpbindaddr=0.0.0.0\n", 0o644)
	if err := os.RemoveAll(a.path("pjsip.d")); err != nil {
		t.Fatal(err)
	}
	converged(t, "a good change after the bad one", a, b)
	if b.logHas("local change on a push target") {
		t.Error("the rollback left the removed file out, and the target took its absence for a local change")
	}
}
