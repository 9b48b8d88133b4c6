package syncer

import (
	"fmt"
	"strings"
	"testing"

	"pbxsync/internal/store"
)

func TestSiteWaves(t *testing.T) {
	t.Parallel()
	sites := map[string]string{"a1": "dc1", "a2": "dc1", "a3": "dc1", "b1": "dc2", "b2": "dc2", "c1": "dc3"}
	siteOf := func(n string) string { return sites[n] }
	for _, c := range []struct {
		name    string
		targets []string
		want    string
	}{
		{"none", nil, "[]"},
		{"one target", []string{"a1"}, "[[a1]]"},
		{"one site: canary, then the rest together", []string{"a1", "a2", "a3"}, "[[a1] [a2 a3]]"},
		{"sites in the order of their first host", []string{"b2", "a1", "b1", "a2", "c1"}, "[[b2] [b1] [a1] [a2] [c1]]"},
		{"the first host listed is the canary", []string{"a3", "a1", "a2", "b1", "b2"}, "[[a3] [a1 a2] [b1] [b2]]"},
		{"no sites: one site of everyone", []string{"x", "y", "z"}, "[[x] [y z]]"},
	} {
		if got := fmt.Sprint(siteWaves(c.targets, siteOf)); got != c.want {
			t.Errorf("%s: siteWaves(%v) = %s, want %s", c.name, c.targets, got, c.want)
		}
	}
}

func TestOpenWaves(t *testing.T) {
	t.Parallel()
	waves := [][]string{{"a1"}, {"a2", "a3"}, {"b1"}, {"b2", "b3"}}
	for _, c := range []struct {
		name string
		done []string // targets done with the newest generation (good or held)
		want string
	}{
		{"start: only the first site's canary", nil, "[a1]"},
		{"canary good: the rest of its site", []string{"a1"}, "[a1 a2 a3]"},
		{"site half done: nothing further", []string{"a1", "a2"}, "[a1 a2 a3]"},
		{"site done: the next site's canary", []string{"a1", "a2", "a3"}, "[a1 a2 a3 b1]"},
		{"every wave done", []string{"a1", "a2", "a3", "b1", "b2", "b3"}, "[a1 a2 a3 b1 b2 b3]"},
		// A rejection (or a target waiting for its Asterisk) is not done:
		// the rollout stops at its wave.
		{"canary rejected: the site waits", []string{}, "[a1]"},
		{"a later site done out of turn changes nothing", []string{"a1", "b1", "b2", "b3"}, "[a1 a2 a3]"},
	} {
		done := map[string]bool{}
		for _, d := range c.done {
			done[d] = true
		}
		open := openWaves(waves, func(n string) bool { return done[n] })
		var got []string
		for _, w := range waves {
			for _, n := range w {
				if open[n] {
					got = append(got, n)
				}
			}
		}
		if fmt.Sprint(got) != c.want {
			t.Errorf("%s: open %v, want %s", c.name, got, c.want)
		}
	}
}

// pinInSites pins others as peers of n, each with its site (written as
// [[peer]] tables in n's config tail).
func pinInSites(n *tnode, sites map[string]string, others ...*tnode) {
	for _, o := range others {
		n.Tail += fmt.Sprintf("[[peer]]\nname = %q\naddress = %q\nid = %q\nsite = %q\n\n", o.name, o.addr(), o.id.ID.String(), sites[o.name])
	}
}

// TestRollingSitesStopsAtRejection: order = "rolling-sites" with a in
// dc1 and targets t1, t2 in dc2 and t3 in dc3. A change reaches dc2's
// canary t1 first, then t2, whose check rejects it: the rollout stops
// there, t3 in the next site never receives it, and the source's status
// says where it stopped. A fixed change then reaches everyone.
func TestRollingSitesStopsAtRejection(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	a := h.node("a")
	ts := []*tnode{h.node("t1"), h.node("t2"), h.node("t3")}
	all := append([]*tnode{a}, ts...)
	sites := map[string]string{"a": "dc1", "t1": "dc2", "t2": "dc2", "t3": "dc3"}
	job := tjob{Name: "conf", Source: "a", Targets: []string{"t1", "t2", "t3"}, Extra: "order = \"rolling-sites\"\n"}
	for _, n := range all {
		n.Node = fmt.Sprintf("site = %q\n", sites[n.name])
		var others []*tnode
		for _, o := range all {
			if o != n {
				others = append(others, o)
			}
		}
		pinInSites(n, sites, others...)
		j := job
		if n.name == "t2" {
			j.Extra += "check = \"! grep -q BROKEN extensions.conf\"\n"
		}
		n.Jobs = []tjob{j}
	}
	good := "[default]\nexten => 100,1,Answer()\n"
	a.write("extensions.conf", good, 0o644)
	for _, n := range all {
		n.start()
	}
	converged(t, "initial rollout, site by site", a, ts...)

	broken := good + "BROKEN\n"
	a.write("extensions.conf", broken, 0o644)
	eventually(t, waitLimit, "the source's status says the rollout stopped at t2", func() error {
		js, _ := a.jobStatus("conf")
		if !strings.Contains(js.Rollout, "rollout stopped at t2") || js.State != string(store.StateBad) {
			return fmt.Errorf("status: state %q, rollout %q, last error %q", js.State, js.Rollout, js.LastError)
		}
		return nil
	})
	if got := ts[0].read("extensions.conf"); string(got) != broken {
		t.Errorf("t1, dc2's canary, holds %q; want the change it passed", got)
	}
	if got := ts[1].read("extensions.conf"); string(got) != good {
		t.Errorf("t2 holds %q after its check failed; want the previous content", got)
	}
	js, _ := a.jobStatus("conf")
	for _, tgt := range js.Targets {
		if tgt.Name == "t3" && tgt.Version == js.Generation {
			t.Errorf("t3, in the next site, answered for the rejected generation: %+v", tgt)
		}
	}
	fixed := good + "exten => 101,1,Hangup()\n"
	a.write("extensions.conf", fixed, 0o644)
	converged(t, "the fixed change reaches every site", a, ts...)
	eventually(t, waitLimit, "the source sees every target good at the fixed generation", func() error {
		js, _ := a.jobStatus("conf")
		if len(js.Targets) != 3 {
			return fmt.Errorf("targets %+v", js.Targets)
		}
		for _, tgt := range js.Targets {
			if tgt.Version != js.Generation || tgt.State != "good" {
				return fmt.Errorf("%+v at generation %d", tgt, js.Generation)
			}
		}
		return nil
	})
	// t3 applied the initial and the fixed generation, never the rejected one.
	if st, _ := ts[2].jobStatus("conf"); st.Applied != 2 {
		t.Errorf("t3 applied %d generations, want 2 (the initial and the fixed one)", st.Applied)
	}
}
