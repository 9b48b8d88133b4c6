package syncer

import (
	"bytes"
	"fmt"
	"strings"
	"testing"
	"time"

	"pbxsync/internal/store"
)

// TestRollingStopsAtBadTarget: order = "rolling" pushes to one target at a
// time; the second target's check fails, so the first is on the new
// generation, the second rolled back, the third never received it, and the
// source's status says where the rollout stopped and why.
func TestRollingStopsAtBadTarget(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	a := h.node("a")
	ts := []*tnode{h.node("t1"), h.node("t2"), h.node("t3")}
	a.pin(ts...)
	job := tjob{Name: "conf", Source: "a", Targets: []string{"t1", "t2", "t3"}, Extra: "order = \"rolling\"\n"}
	a.Jobs = []tjob{job}
	for _, n := range ts {
		n.pin(a)
		j := job
		if n.name == "t2" {
			j.Extra += "check = \"! grep -q BROKEN extensions.conf\"\n"
		}
		n.Jobs = []tjob{j}
	}
	good := "[default]\nexten => 100,1,Answer()\n"
	a.write("extensions.conf", good, 0o644)
	for _, n := range append([]*tnode{a}, ts...) {
		n.start()
	}
	converged(t, "initial rollout", a, ts...)

	broken := good + "BROKEN\n"
	a.write("extensions.conf", broken, 0o644)
	eventually(t, waitLimit, "t1 applies the new generation", func() error {
		if !bytes.Equal(ts[0].read("extensions.conf"), []byte(broken)) {
			return fmt.Errorf("t1 still has the old content")
		}
		return nil
	})
	eventually(t, waitLimit, "t2 marks it bad", func() error {
		gens, err := ts[1].a().Store().Generations("conf")
		if err != nil {
			return err
		}
		for _, g := range gens {
			if g.State == store.StateBad && strings.Contains(g.Reason, "BROKEN") {
				return nil
			}
		}
		return fmt.Errorf("no bad generation on t2: %+v", gens)
	})
	eventually(t, waitLimit, "the source's status explains the stop", func() error {
		js, _ := a.jobStatus("conf")
		if !strings.Contains(js.Rollout, "rollout stopped at t2") || js.State != string(store.StateBad) || !strings.Contains(js.LastError, "t2") {
			return fmt.Errorf("status: state %q, rollout %q, last error %q", js.State, js.Rollout, js.LastError)
		}
		return nil
	})
	if got := ts[1].read("extensions.conf"); !bytes.Equal(got, []byte(good)) {
		t.Errorf("t2 holds %q after its check failed; want the previous content", got)
	}
	// The third target must never see it, not even later.
	time.Sleep(2 * time.Second)
	if got := ts[2].read("extensions.conf"); !bytes.Equal(got, []byte(good)) {
		t.Errorf("t3 received the generation t2 rejected: %q", got)
	}
	js, _ := a.jobStatus("conf")
	for _, tgt := range js.Targets {
		switch tgt.Name {
		case "t1":
			if tgt.State != "good" || tgt.Version != js.Generation {
				t.Errorf("t1: %+v; want good at generation %d", tgt, js.Generation)
			}
		case "t2":
			if tgt.State != "bad" {
				t.Errorf("t2: %+v; want bad", tgt)
			}
		case "t3":
			if tgt.Version == js.Generation {
				t.Errorf("t3 answered for the rejected generation: %+v", tgt)
			}
		}
	}
	// A fixed change rolls out to everyone again.
	fixed := good + "exten => 101,1,Hangup()\n"
	a.write("extensions.conf", fixed, 0o644)
	converged(t, "the fixed change reaches all three", a, ts...)
}
