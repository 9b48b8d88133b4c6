package syncer

import (
	"fmt"
	"path/filepath"
	"testing"
)

// TestStagingName: the name stagingName builds by hand is the one
// filepath.Join and %016x make, and stagingID reads its id back.
func TestStagingName(t *testing.T) {
	for _, dir := range []string{"/var/lib/pbxsync/staging", "/", "/srv/etc/.pbxsync-staging", "/a/./b/../c", "rel/dir"} {
		for _, id := range []uint64{1, 0xdeadbeef, 1 << 63, ^uint64(0)} {
			a := &Applier{Job: "etc-files", Staging: dir}
			want := filepath.Join(dir, fmt.Sprintf("%s%s-%016x", stagePrefix, a.Job, id))
			if got := a.stagingName(id); got != want {
				t.Errorf("stagingName(%#x) in %q = %q, want %q", id, dir, got, want)
			}
			if back, ok := a.stagingID(a.stagingName(id)); !ok || back != id {
				t.Errorf("stagingID(stagingName(%#x)) in %q = %#x, %v", id, dir, back, ok)
			}
		}
	}
}
