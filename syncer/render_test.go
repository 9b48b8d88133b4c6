package syncer

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"pbxsync/internal/config"
	"pbxsync/internal/store"
)

// templatesPair is a and b with their own site and vars, pushing job
// "conf" with templates; a rule on the rendering pjsip.conf logs what
// changed (PBXSYNC_CHANGED) beside each tree and fails when the rendering
// says FAILME.
func templatesPair(h *harness) (a, b *tnode) {
	a, b = h.pair("templates = [\"*.tmpl\"]\n[[job.rule]]\nmatch = [\"pjsip.conf\"]\n" +
		"check = \"printf '%s\\\\n--\\\\n' \\\"$PBXSYNC_CHANGED\\\" >> ../changed.log; ! grep -q FAILME pjsip.conf\"\n")
	a.Node = "site = \"fra\"\n[node.vars]\nexternal_ip = \"203.0.113.1\"\n"
	b.Node = "site = \"ber\"\n[node.vars]\nexternal_ip = \"203.0.113.2\"\n"
	return a, b
}

const goodTemplate = "[transport-udp]\nexternal_media_address = {{ .Vars.external_ip }}\n; {{ .Node.Name }}@{{ .Node.Site }}\n"

// TestTemplatesPerHost: a synced pjsip.conf.tmpl renders on the source
// and the target with each one's own values; the rendering is not synced
// and is no item of either's generations; a rule on the rendering runs
// (its check sees it in PBXSYNC_CHANGED).
func TestTemplatesPerHost(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	a, b := templatesPair(h)
	a.write("extensions.conf", "[default]\n", 0o644)
	a.write("pjsip.conf.tmpl", goodTemplate, 0o640)
	a.start()
	b.start()
	wantA := "[transport-udp]\nexternal_media_address = 203.0.113.1\n; a@fra\n"
	wantB := "[transport-udp]\nexternal_media_address = 203.0.113.2\n; b@ber\n"
	waitContent(t, b, "pjsip.conf", wantB)
	waitContent(t, a, "pjsip.conf", wantA)
	if fi, err := os.Stat(b.path("pjsip.conf")); err != nil || fi.Mode().Perm() != 0o640 {
		t.Errorf("b's rendering: %v, %v; want the template's mode 0640", fi, err)
	}
	waitLatestState(t, b, store.StateGood)
	for _, n := range []*tnode{a, b} {
		g, ok, err := n.a().Store().Latest("conf", store.StateGood)
		if err != nil || !ok {
			t.Fatalf("%s: no good generation: %v", n.name, err)
		}
		if g.Index.Has("pjsip.conf") {
			t.Errorf("%s: the rendering pjsip.conf is an item of generation %d", n.name, g.Number)
		}
		if !g.Index.Has("pjsip.conf.tmpl") {
			t.Errorf("%s: the template is no item of generation %d", n.name, g.Number)
		}
	}
	log, err := os.ReadFile(filepath.Join(filepath.Dir(b.tree), "changed.log"))
	if err != nil || !strings.Contains("\n"+string(log), "\npjsip.conf\n") {
		t.Errorf("b's rule on pjsip.conf did not run with it in PBXSYNC_CHANGED: %q, %v", log, err)
	}
	// the rendering stays what it is on both: a's is not sent to b
	a.appendTo("extensions.conf", "exten => 1,1,Answer()\n")
	waitContent(t, b, "extensions.conf", "[default]\nexten => 1,1,Answer()\n") // the trees differ at the renderings
	if got := string(b.read("pjsip.conf")); got != wantB {
		t.Errorf("b's rendering after another change: %q", got)
	}
}

// TestTemplateErrorFailsGeneration: a template that does not render fails
// the generation on the target like a failed check, with FILE:LINE:COL of
// the template in its reason; the target's rendering keeps its last good
// content and the template is rolled back. A template whose rendering
// fails a check rolls the rendering back to the previous one.
func TestTemplateErrorFailsGeneration(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	a, b := templatesPair(h)
	a.write("pjsip.conf.tmpl", goodTemplate, 0o644)
	a.start()
	b.start()
	good := "[transport-udp]\nexternal_media_address = 203.0.113.2\n; b@ber\n"
	waitContent(t, b, "pjsip.conf", good)
	aGood := string(a.read("pjsip.conf"))

	a.write("pjsip.conf.tmpl", "[transport-udp]\nexternal_media_address = {{ .Vars.no_such_var }}\n", 0o644)
	g := waitLatestState(t, b, store.StateBad)
	tmplPath := filepath.Join(b.tree, "pjsip.conf.tmpl")
	if !strings.Contains(g.Reason, "render failed: "+tmplPath+":2:34: .Vars.no_such_var") {
		t.Errorf("reason of the failed render: %q; want %s:2:34 and the variable", g.Reason, tmplPath)
	}
	if got := string(b.read("pjsip.conf")); got != good {
		t.Errorf("b's rendering after a failed render: %q, want the last good %q", got, good)
	}
	waitContent(t, b, "pjsip.conf.tmpl", goodTemplate) // rolled back
	if got := string(a.read("pjsip.conf")); got != aGood {
		t.Errorf("a's rendering after its failed render: %q, want the last good %q", got, aGood)
	}
	if st, _ := a.jobStatus("conf"); !strings.Contains(st.LastError, "no_such_var") {
		t.Errorf("a's status does not say its template does not render: %q", st.LastError)
	}

	// renders, but its rendering fails the check: rolled back to the
	// rendering before
	a.write("pjsip.conf.tmpl", "; FAILME {{ .Vars.external_ip }}\n", 0o644)
	g2 := waitLatestState(t, b, store.StateBad, g.Number)
	if !strings.Contains(g2.Reason, "check") {
		t.Errorf("reason: %q", g2.Reason)
	}
	waitContent(t, b, "pjsip.conf", good)

	// fixed: applied, rendered
	a.write("pjsip.conf.tmpl", "external_media_address = {{ .Vars.external_ip }}\n", 0o644)
	waitContent(t, b, "pjsip.conf", "external_media_address = 203.0.113.2\n")
}

// TestNodeVarsOfPeer: a node with templates tells its peers its site and
// vars; pbxsync render --node asks the agent for them (NodeVars).
func TestNodeVarsOfPeer(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	a, b := templatesPair(h)
	a.start()
	b.start()
	eventually(t, waitLimit, "a knows b's vars", func() error {
		d, err := a.a().NodeVars("b")
		if err != nil {
			return err
		}
		if d.Node.Name != "b" || d.Node.Site != "ber" || d.Vars["external_ip"] != "203.0.113.2" {
			return fmt.Errorf("got %+v", d)
		}
		return nil
	})
	if d, err := a.a().NodeVars(""); err != nil || d.Node.Name != "a" || d.Vars["external_ip"] != "203.0.113.1" {
		t.Errorf("own vars: %+v, %v", d, err)
	}
	if _, err := a.a().NodeVars("zz"); err == nil || !strings.Contains(err.Error(), "neither this node") {
		t.Errorf("vars of an unknown node: %v", err)
	}
}

// TestNodeVarsNotSentWithoutTemplates: a node none of whose jobs has
// templates keeps its vars to itself.
func TestNodeVarsNotSentWithoutTemplates(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	a, b := h.pair("")
	a.Node = "[node.vars]\nsecretish = \"x\"\n"
	b.Node = "[node.vars]\nsecretish = \"y\"\n"
	a.start()
	b.start()
	eventually(t, waitLimit, "a has b's state", func() error {
		if a.a().mon.PeerState("b") == nil {
			return errors.New("no state yet")
		}
		return nil
	})
	if _, err := a.a().NodeVars("b"); !errors.Is(err, ErrVarsUnknown) {
		t.Errorf("vars of a peer without templates: %v; want ErrVarsUnknown", err)
	}
}

// waitContent waits until the file rel of n holds want.
func waitContent(tb testing.TB, n *tnode, rel, want string) {
	tb.Helper()
	eventually(tb, waitLimit, n.name+": "+rel, func() error {
		got, err := os.ReadFile(n.path(rel))
		if err != nil {
			return err
		}
		if string(got) != want {
			return fmt.Errorf("holds %q, want %q", got, want)
		}
		return nil
	})
}

// waitLatestState waits until the newest generation of job conf on n is
// in state and newer than every one of after; it returns it.
func waitLatestState(tb testing.TB, n *tnode, state store.State, after ...uint64) store.GenerationInfo {
	tb.Helper()
	var out store.GenerationInfo
	eventually(tb, waitLimit, fmt.Sprintf("%s: a generation %s", n.name, state), func() error {
		gens, err := n.a().Store().Generations("conf")
		if err != nil || len(gens) == 0 {
			return fmt.Errorf("generations: %v", err)
		}
		g := gens[len(gens)-1]
		for _, x := range after {
			if g.Number <= x {
				return fmt.Errorf("newest is %d", g.Number)
			}
		}
		if g.State != state {
			return fmt.Errorf("newest %d is %s (%s)", g.Number, g.State, g.Reason)
		}
		out = g
		return nil
	})
	return out
}

// TestTemplateVarsReload: a generation whose template needs a variable
// the target lacks fails there; once the target's [node.vars] gets it and
// its config is reloaded, the target renders again with the new values
// and takes the generation it refused.
func TestTemplateVarsReload(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	a, b := templatesPair(h)
	a.Node += "sip_port = \"5060\"\n"
	a.write("pjsip.conf.tmpl", "ip = {{ .Vars.external_ip }}\n", 0o644)
	a.start()
	b.start()
	waitContent(t, b, "pjsip.conf", "ip = 203.0.113.2\n")
	a.write("pjsip.conf.tmpl", "ip = {{ .Vars.external_ip }}\nport = {{ .Vars.sip_port }}\n", 0o644)
	g := waitLatestState(t, b, store.StateBad)
	if !strings.Contains(g.Reason, "sip_port") {
		t.Fatalf("reason %q", g.Reason)
	}

	b.Node = "site = \"ber\"\n[node.vars]\nexternal_ip = \"198.51.100.7\"\nsip_port = \"5070\"\n"
	cfg, err := config.Parse(filepath.Join(h.base, "b", "pbxsync.toml"), []byte(b.configText()))
	if err != nil {
		t.Fatal(err)
	}
	if err := b.a().Reload(cfg); err != nil {
		t.Fatal(err)
	}
	waitContent(t, b, "pjsip.conf", "ip = 198.51.100.7\nport = 5070\n")
	waitLatestState(t, b, store.StateGood, g.Number)
	eventually(t, waitLimit, "a learns b's new vars", func() error {
		d, err := a.a().NodeVars("b")
		if err != nil || d.Vars["sip_port"] != "5070" {
			return fmt.Errorf("%+v %v", d, err)
		}
		return nil
	})
}

// TestTemplateRemoved: removing a template removes its rendering on every
// host; turning a template into an ordinary file (mv X.tmpl X) syncs X
// as any other file.
func TestTemplateRemoved(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	a, b := templatesPair(h)
	a.write("pjsip.conf.tmpl", goodTemplate, 0o644)
	a.write("extensions.conf", "[default]\n", 0o644)
	a.start()
	b.start()
	waitContent(t, b, "pjsip.conf", "[transport-udp]\nexternal_media_address = 203.0.113.2\n; b@ber\n")
	if err := os.Remove(a.path("pjsip.conf.tmpl")); err != nil {
		t.Fatal(err)
	}
	for _, n := range []*tnode{a, b} {
		eventually(t, waitLimit, n.name+": the rendering goes with its template", func() error {
			for _, p := range []string{"pjsip.conf", "pjsip.conf.tmpl"} {
				if _, err := os.Lstat(n.path(p)); !errors.Is(err, os.ErrNotExist) {
					return fmt.Errorf("%s: %v", p, err)
				}
			}
			return nil
		})
	}
	a.write("pjsip.conf.tmpl", "plain {{ .Node.Name }}\n", 0o644)
	waitContent(t, b, "pjsip.conf", "plain b\n")
	if err := os.Rename(a.path("pjsip.conf.tmpl"), a.path("pjsip.conf")); err != nil {
		t.Fatal(err)
	}
	waitContent(t, b, "pjsip.conf", "plain {{ .Node.Name }}\n") // an ordinary file now, synced as it is
	converged(t, "no template any more", a, b)
}
