package syncer

import (
	"context"
	"crypto/rand"
	"fmt"
	"os"
	"testing"
	"time"

	"pbxsync/internal/wanlink"
	"pbxsync/internal/wire"
)

// TestProgressOfALongInitialSync: two real agents on 127.0.0.1, each
// reaching the other through a userspace link that delays every datagram
// by 150 ms (so the initial sync of 80 files that cannot ride inline takes
// seconds: at least 10 rounds of 8 fetches, 300 ms each). While it runs the
// target's status shows the files and bytes fetched of all it needs and an
// ETA, and the source's row of that target shows the same as the target
// reported it; once the tree converged, both are gone and the target is
// good.
func TestProgressOfALongInitialSync(t *testing.T) {
	t.Parallel()
	a, b := delayedPair(t, 150*time.Millisecond)
	// the fetch after the announcement is the test: nothing offered before
	a.tune = func(o *Options) { o.NoOffers = true }

	const files, size = 80, 96 << 10 // random: each over the 64 KiB inline bound compressed
	randomFiles(t, a, files, size)
	a.start()
	b.start()

	// Both are polled in one loop (each is kept once seen): the source's
	// row shows a report only until the target's final answer.
	var seen, row *Progress
	eventually(t, waitLimit, "the target and the source's row of it show progress in the middle of the fetch", func() error {
		if seen == nil {
			js, _ := b.jobStatus("conf")
			if p := js.Progress; p != nil && p.Phase == wire.PhaseFetching && p.Files > 0 && p.Files < p.FilesTotal {
				seen = p
			}
		}
		if row == nil {
			js, _ := a.jobStatus("conf")
			for _, ts := range js.Targets {
				if ts.Name == "b" && ts.State == "applying" && ts.Progress != nil && ts.Progress.Phase == wire.PhaseFetching {
					row = ts.Progress
				}
			}
		}
		if seen == nil || row == nil {
			return fmt.Errorf("target's progress %v, source's row %v", seen, row)
		}
		return nil
	})
	if seen.FilesTotal != files || seen.BytesTotal != files*size || seen.Bytes != seen.Files*size || seen.ETASeconds <= 0 || seen.Generation != 1 {
		t.Errorf("target's progress: %+v; want %d files, %d bytes in all, bytes done = files done × %d, an ETA, generation 1", seen, files, files*size, size)
	}
	if row.FilesTotal != files || row.BytesTotal != files*size || row.Generation != 1 || row.At.IsZero() {
		t.Errorf("source's row of b: progress %+v; want %d files and %d bytes in all of generation 1, and when it was reported", row, files, files*size)
	}

	converged(t, "initial sync", a, b)
	eventually(t, waitLimit, "progress gone once the target is good", func() error {
		bs, _ := b.jobStatus("conf")
		as, _ := a.jobStatus("conf")
		if bs.Progress != nil || bs.State != "good" {
			return fmt.Errorf("target: state %s, progress %v", bs.State, bs.Progress)
		}
		if len(as.Targets) != 1 || as.Targets[0].State != "good" || as.Targets[0].Progress != nil {
			return fmt.Errorf("source's rows: %+v", as.Targets)
		}
		return nil
	})
	if !b.logHas("phase done", "phase=fetching", fmt.Sprintf("files=%d", files)) {
		t.Errorf("the target did not log how long its fetch took")
	}
}

// TestProgressOfTheOfferedContent: the longest part of a first sync is
// the target fetching what the source offers as its scan stores it,
// before any announcement. Two real agents on 127.0.0.1 through
// userspace links that delay every datagram by 150 ms, 120 files of
// random content (incompressible: ~11 MB to move at a window per round
// trip): while the target fetches offered content its status shows it as
// such (the first generation, files and bytes fetched of those offered
// so far); once the sync converged, no progress is left.
func TestProgressOfTheOfferedContent(t *testing.T) {
	t.Parallel()
	a, b := delayedPair(t, 150*time.Millisecond)
	const files, size = 120, 96 << 10
	randomFiles(t, a, files, size)
	b.start()
	waitingForFirst(t, b)
	a.start()

	var seen *Progress
	eventually(t, waitLimit, "the target shows its fetch of offered content", func() error {
		js, _ := b.jobStatus("conf")
		if p := js.Progress; p != nil && p.Offered && p.Files > 0 {
			seen = p
			return nil
		}
		return fmt.Errorf("state %s, progress %v", js.State, js.Progress)
	})
	if seen.Phase != wire.PhaseFetching || seen.Generation != 0 || seen.FilesTotal > files || seen.Files > seen.FilesTotal ||
		seen.BytesTotal != seen.FilesTotal*size || seen.Bytes != seen.Files*size {
		t.Errorf("progress of the offered content: %+v; want fetching, generation 0, at most %d files offered, %d bytes each", seen, files, size)
	}
	converged(t, "initial sync", a, b)
	eventually(t, waitLimit, "no progress once the target is good", func() error {
		if js, _ := b.jobStatus("conf"); js.Progress != nil || js.State != "good" {
			return fmt.Errorf("target: state %s, progress %v", js.State, js.Progress)
		}
		return nil
	})
}

// delayedPair is a pair of the harness's nodes, not started, that reach
// each other through userspace links delaying every datagram by delay.
func delayedPair(t *testing.T, delay time.Duration) (a, b *tnode) {
	t.Helper()
	a, b = newHarness(t).pair("")
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	toA, err := wanlink.Start(ctx, wanlink.Config{Upstream: a.addr(), Delay: delay})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { toA.Close() })
	toB, err := wanlink.Start(ctx, wanlink.Config{Upstream: b.addr(), Delay: delay})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { toB.Close() })
	a.Peers[0].Address = toB.Addr().String()
	b.Peers[0].Address = toA.Addr().String()
	return a, b
}

// randomFiles writes n files of size random bytes into four directories
// of n's tree.
func randomFiles(t *testing.T, n *tnode, files, size int) {
	t.Helper()
	for i := range 4 {
		if err := os.MkdirAll(n.path(fmt.Sprintf("d%d", i)), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for i := range files {
		content := make([]byte, size)
		rand.Read(content)
		n.replace(fmt.Sprintf("d%d/f%03d.wav", i%4, i), content, 0o644)
	}
}
