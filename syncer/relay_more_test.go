package syncer

import (
	"context"
	"fmt"
	"testing"
)

// heldRelaySites starts origin a, relay b and far target d of sitesFarm
// (c stays down, so b is dc2's only relay), lets them sync a second
// generation and holds b at the first (rollback --hold): b then relays
// content it does not take itself.
func heldRelaySites(t *testing.T) (a, b, d *tnode) {
	t.Helper()
	a, b, _, d = sitesFarm(t, "")
	startSites(t, a, b, d)
	a.write("extensions.conf", seedExtensions+"; two\n", 0o644)
	converged(t, "a second generation", a, b, d)
	if _, err := b.a().Rollback(context.Background(), "conf", 0, true); err != nil {
		t.Fatal(err)
	}
	return a, b, d
}

// TestSitesRelayBatch: the relay of dc2 is held (rollback --hold), so it
// lacks the contents of a new generation of many small files; d, behind
// it, fetches them (too large to be inlined) in batches (Get.More) and the relay fetches the
// missing ones from the source for the whole batch, so d needs a few
// streams, not one per file.
func TestSitesRelayBatch(t *testing.T) {
	t.Parallel()
	a, b, d := heldRelaySites(t)
	before, _ := d.jobStatus("conf")
	const files = 24
	for i := range files {
		a.write(fmt.Sprintf("sounds/f%02d.gsm", i), string(randBytes(uint64(100+i), 80<<10)), 0o644)
	}
	converged(t, "many small files behind a held relay", a, d)
	after, _ := d.jobStatus("conf")
	streams := after.FetchStreams - before.FetchStreams
	t.Logf("d took %d streams for %d files", streams, files)
	if streams > files/4 {
		t.Errorf("d took %d fetch streams for %d small files: the relay did not serve them in batches", streams, files)
	}
	if !b.logHas("fetching content from the source for this site") {
		t.Error("the held relay did not fetch the content for d")
	}
}
