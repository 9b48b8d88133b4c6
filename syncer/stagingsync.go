package syncer

import (
	"fmt"
)

// stagingSyncBytes is how much content (in file system blocks) is staged
// while it is fetched before a background syncfs starts writing it back:
// the apply's own syncfs then finds little left to write (an initial sync
// of 100,000 files spent 1.4-3.1 s of its apply in it, after the fetch).
const stagingSyncBytes = 64 << 20

// stagingSync writes back, in the background, the files a fetch stages
// for a later apply (Applier.noteStaged), so that the apply's syncfs,
// on its critical path, has less to do. It changes no guarantee: the
// apply still makes everything durable before its journal names a file.
// A writeback error the background syncfs reports is kept for the apply,
// which fails with it: syncfs(2) reports an error once per descriptor
// that has not seen it, and the apply's own, opened later, might not.
type stagingSync struct {
	pending int64         // bytes staged since the last sync started
	running chan struct{} // closed when the running sync ends; nil when none
	err     error         // the first error a background sync reported
}

// blockBytes is what a file of size bytes takes in the page cache, at
// least one 4 KiB block (its inode and directory entry are written too).
func blockBytes(size int64) int64 {
	return max(4096, (size+4095)&^4095)
}

// noteStaged tells of a file of size bytes just staged through the page
// cache; it starts a background syncfs of the staging directory when
// stagingSyncBytes have been staged since the last one started and none
// runs.
func (a *Applier) noteStaged(size int64) {
	a.prestageMu.Lock()
	defer a.prestageMu.Unlock()
	s := &a.stagingSync
	s.pending += blockBytes(size)
	if s.pending < stagingSyncBytes || s.running != nil || a.Staging == "" {
		return
	}
	s.pending = 0
	done := make(chan struct{})
	s.running = done
	go func(dir string) {
		_, err := a.syncFS(dir)
		a.prestageMu.Lock()
		if err != nil && s.err == nil {
			s.err = fmt.Errorf("background writeback of the staged files: %w", err)
		}
		s.running = nil
		a.prestageMu.Unlock()
		close(done)
	}(a.Staging)
}

// waitStagingSync waits for a background sync that runs and returns (and
// forgets) the first error one reported. The apply calls it after its own
// sync, which made what was staged durable: the count starts again.
func (a *Applier) waitStagingSync() error {
	a.prestageMu.Lock()
	done := a.stagingSync.running
	a.prestageMu.Unlock()
	if done != nil {
		<-done
	}
	a.prestageMu.Lock()
	defer a.prestageMu.Unlock()
	err := a.stagingSync.err
	a.stagingSync.err, a.stagingSync.pending = nil, 0
	return err
}

// syncFS is syncFS, or what a test put in its place.
func (a *Applier) syncFS(dir string) (bool, error) {
	if a.syncfs != nil {
		return a.syncfs(dir)
	}
	return syncFS(dir)
}
