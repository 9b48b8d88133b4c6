package syncer

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestPeerHooksRunOncePerTransition: three agents; when c stops, a and b
// notice and run their on_peer_down command once (after its 2 s grace);
// when c comes back they run on_peer_up once. A peer that is not up
// within the grace of an agent's start counts as down (HookRunner, so that
// a standby that starts while its primary is dead takes over; see
// TestHookRunnerDownAtStart): on a loaded machine c may connect later than
// that, and a or b then rightly runs one "down" before the first "up".
// What follows is asserted exactly.
func TestPeerHooksRunOncePerTransition(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	a, b, c := h.node("a"), h.node("b"), h.node("c")
	a.pin(b, c)
	b.pin(a, c)
	c.pin(a, b)
	job := tjob{Name: "conf", Source: "a", Targets: []string{"b", "c"}}
	for _, n := range []*tnode{a, b, c} {
		n.Jobs = []tjob{job}
	}
	events := map[*tnode]string{a: filepath.Join(h.base, "a-events"), b: filepath.Join(h.base, "b-events")}
	for n, f := range events {
		n.Tail = fmt.Sprintf("\n[[on_peer_down]]\npeer = \"c\"\ngrace = \"2s\"\ncommand = \"echo down $PBXSYNC_PEER >> %s\"\n\n[[on_peer_up]]\npeer = \"c\"\ncommand = \"echo up $PBXSYNC_PEER >> %s\"\n", f, f)
	}
	a.write("extensions.conf", seedExtensions, 0o644)
	for _, n := range []*tnode{a, b, c} {
		n.start()
	}
	converged(t, "initial sync", a, b, c)
	read := func(n *tnode) []string {
		raw, _ := os.ReadFile(events[n])
		return strings.Fields(strings.ReplaceAll(strings.TrimSpace(string(raw)), " c", ""))
	}
	start := map[*tnode]string{} // what a node ran until c was first up: "up" or "down,up"
	eventually(t, waitLimit, "up hooks for c", func() error {
		for _, n := range []*tnode{a, b} {
			got := strings.Join(read(n), ",")
			if got != "up" && got != "down,up" {
				return fmt.Errorf("%s ran %v", n.name, got)
			}
			start[n] = got
		}
		return nil
	})
	stopping := time.Now()
	c.stop()
	eventually(t, waitLimit, "down hooks for c", func() error {
		for _, n := range []*tnode{a, b} {
			if got := read(n); strings.Join(got, ",") != start[n]+",down" {
				return fmt.Errorf("%s ran %v", n.name, got)
			}
		}
		return nil
	})
	// How soon is a latency (the product says ~3 s to notice, then the
	// grace), not asserted here: on a loaded machine it varies. The grace is
	// a lower bound that holds on any machine.
	took := time.Since(stopping)
	if took < 2*time.Second {
		t.Errorf("down hook ran %s after the stop began; want the 2 s grace first", took)
	}
	t.Logf("down hook ran %s after the stop began (2 s of it is the grace)", took.Round(time.Millisecond))
	c.start()
	eventually(t, waitLimit, "up hooks again", func() error {
		for _, n := range []*tnode{a, b} {
			if got := read(n); strings.Join(got, ",") != start[n]+",down,up" {
				return fmt.Errorf("%s ran %v", n.name, got)
			}
		}
		return nil
	})
	time.Sleep(time.Second) // nothing more may run: once per transition
	for _, n := range []*tnode{a, b} {
		if got := read(n); strings.Join(got, ",") != start[n]+",down,up" {
			t.Errorf("%s ran %v; want each hook once per transition", n.name, got)
		}
	}
}
