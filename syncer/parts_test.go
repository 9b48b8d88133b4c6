package syncer

import (
	"fmt"
	"strings"
	"testing"
)

// TestE2EAnnouncementInParts: with parts of about 4 KB, the complete
// announcement of a 400-file job travels as many messages (as a 100k-file
// job's does with the default size, where one message would pass the
// 64 MiB limit); the target assembles them, applies the job, and then the
// incremental announcement of an edit. Both agents dial each other, so
// the parts of one announcement (or of its repeat) may come on two
// connections, interleaved: the target drops none of them.
func TestE2EAnnouncementInParts(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	a, b := h.pair("")
	small := func(o *Options) { o.AnnouncePartBytes = 1 << 10 }
	a.tune, b.tune = small, small
	for i := range 400 {
		a.write(fmt.Sprintf("d%d/f%03d.conf", i%4, i), strings.Repeat("x", i), 0o644)
	}
	a.start()
	b.start()
	converged(t, "initial sync in parts", a, b)
	a.appendTo("d1/f001.conf", "edited\n")
	converged(t, "an edit after it", a, b)
	if !a.logHas("announcing in parts") {
		t.Error("the source never announced in parts")
	}
	if n := b.countLines("dropping a part of an announcement"); n != 0 {
		t.Errorf("the target dropped %d announcements in parts", n)
	}
}
