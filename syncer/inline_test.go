package syncer

import (
	"fmt"
	"strings"
	"testing"
)

// TestInlineContentNeedsNoTransfer: a small edit reaches the target inside
// the announcement (as a delta against the previous version), so the
// source serves no transfer stream for it.
func TestInlineContentNeedsNoTransfer(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	a, b := h.pair("")
	var dialplan strings.Builder
	dialplan.WriteString(seedExtensions)
	for i := 0; i < 400; i++ {
		fmt.Fprintf(&dialplan, "exten => %d,1,Dial(PJSIP/%d,30)\n same => n,VoiceMail(%d@default,u)\n", 1000+i, 1000+i, 1000+i)
	}
	a.write("extensions.conf", dialplan.String(), 0o644)
	a.start()
	b.start()
	converged(t, "initial sync", a, b)
	waitGood(t, b, "conf")
	servedBefore := a.a().Status().Jobs[0].BytesSent
	receivedBefore := b.a().Status().Jobs[0]
	for i := 0; i < 3; i++ {
		a.appendTo("extensions.conf", fmt.Sprintf("exten => %d,1,Hangup()\n", 200+i))
		converged(t, "an appended line", a, b)
	}
	waitGood(t, b, "conf")
	if served := a.a().Status().Jobs[0].BytesSent; served != servedBefore {
		t.Errorf("the source served %d bytes over transfer streams for small edits; want them inline", served-servedBefore)
	}
	after := b.a().Status().Jobs[0]
	logical := after.LogicalBytesReceived - receivedBefore.LogicalBytesReceived
	wire := after.BytesReceived - receivedBefore.BytesReceived
	if logical == 0 || wire == 0 {
		t.Fatalf("the target counted no inline content: logical %d, wire %d", logical, wire)
	}
	if wire*4 > logical {
		t.Errorf("inline content took %d wire bytes for %d logical bytes; want a delta, not the whole file", wire, logical)
	}
}
