package syncer

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"pbxsync/internal/index"
	"pbxsync/internal/testwait"
)

// TestStagingSyncInBackground: files staged while fetched start one
// background syncfs of the staging directory once stagingSyncBytes of
// them (in blocks) are staged, not before, and not a second while one
// runs; the apply waits for it before its own.
func TestStagingSyncInBackground(t *testing.T) {
	t.Parallel()
	a := newApplier(t)
	var calls atomic.Int32
	started, release := make(chan string, 2), make(chan struct{})
	a.syncfs = func(dir string) (bool, error) {
		calls.Add(1)
		started <- dir
		<-release
		return true, nil
	}
	const small = 1500 // a .conf file: one 4 KiB block
	for range stagingSyncBytes/4096 - 1 {
		a.noteStaged(small)
	}
	if n := calls.Load(); n != 0 {
		t.Fatalf("%d background syncs before stagingSyncBytes were staged", n)
	}
	a.noteStaged(small)
	if dir := testwait.Chan(t, "the background sync to start", started); dir != a.Staging {
		t.Errorf("the background sync was of %s, not of the staging directory %s", dir, a.Staging)
	}
	for range stagingSyncBytes / 4096 {
		a.noteStaged(small)
	}
	waited := make(chan error, 1)
	go func() { waited <- a.waitStagingSync() }()
	select {
	case err := <-waited:
		t.Fatalf("waitStagingSync returned (%v) while the sync ran", err)
	default:
	}
	close(release)
	if err := <-waited; err != nil {
		t.Fatal(err)
	}
	if n := calls.Load(); n != 1 {
		t.Errorf("%d background syncs: a second started while the first ran", n)
	}
}

// TestStagingSyncErrorFailsTheApply: a writeback error the background
// syncfs reported fails the next apply that stages a file (the apply's
// own syncfs might not see it again), which leaves the tree as it was;
// the one after it, with no new error, applies.
func TestStagingSyncErrorFailsTheApply(t *testing.T) {
	t.Parallel()
	a := newApplier(t)
	ctx := context.Background()
	var fail atomic.Bool
	fail.Store(true)
	a.syncfs = func(dir string) (bool, error) {
		if fail.Load() {
			return false, errors.New("input/output error (test)")
		}
		return syncFS(dir)
	}
	a.noteStaged(stagingSyncBytes)
	it := a.put(t, "extensions.conf", "[default]\nexten => 100,1,Dial(PJSIP/100)\n", 0o640)
	want := index.Of(it)
	err := a.Apply(ctx, 1, Plan(index.Index{}, want), IndexLookup(want))
	if err == nil || !strings.Contains(err.Error(), "background writeback of the staged files") || !strings.Contains(err.Error(), "input/output error (test)") {
		t.Fatalf("apply after a failed background writeback: got %v, want its error", err)
	}
	if _, err := os.Lstat(filepath.Join(a.Root, it.Path)); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("the failed apply changed the tree: %v", err)
	}
	fail.Store(false)
	if err := a.Apply(ctx, 1, Plan(index.Index{}, want), IndexLookup(want)); err != nil {
		t.Fatalf("the next apply: %v", err)
	}
	if b, err := os.ReadFile(filepath.Join(a.Root, it.Path)); err != nil || !strings.Contains(string(b), "Dial(PJSIP/100)") {
		t.Fatalf("the next apply wrote %q, %v", b, err)
	}
}
