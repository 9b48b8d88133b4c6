package syncer

import (
	"testing"
)

// TestRelayThroughTwoJobs: a relay is two jobs on one tree. b is a target
// of "conf" from a (across the slow link) and the source of "conf-dc2" to
// c (inside its data centre); a change on a reaches c through b, so it
// crosses the link between a and b once however many hosts sit behind b.
func TestRelayThroughTwoJobs(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	a, b, c := h.node("a"), h.node("b"), h.node("c")
	a.pin(b)
	b.pin(a, c)
	c.pin(b)
	conf := tjob{Name: "conf", Source: "a", Targets: []string{"b"}}
	dc2 := tjob{Name: "conf-dc2", Source: "b", Targets: []string{"c"}}
	a.Jobs = []tjob{conf}
	b.Jobs = []tjob{conf, dc2}
	c.Jobs = []tjob{dc2}
	a.write("extensions.conf", seedExtensions, 0o644)
	for _, n := range []*tnode{a, b, c} {
		n.start()
	}
	converged(t, "initial sync through the relay", a, b, c)
	a.appendTo("extensions.conf", "exten => 200,1,Hangup()\n")
	a.write("sounds/custom/welcome.gsm", string(randBytes(9, 20000)), 0o644)
	converged(t, "a change through the relay", a, b, c)
	waitGood(t, c, "conf-dc2")
	// c never talked to a
	for _, p := range c.a().Status().Peers {
		if p.Name == "a" {
			t.Fatalf("c has a peer a: %+v", p)
		}
	}
}
