package syncer

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"pbxsync/internal/amisim"
	"pbxsync/internal/config"
	"pbxsync/internal/store"
)

// TestMeshWaitsForAsterisk: a member whose Asterisk is down does not take
// a member's version that needs a reload there. Applying it could only be
// rolled back (the reload cannot run), so it is neither written nor
// recorded: no generation per retry, no file flipping back and forth
// every index the member repeats while Asterisk is down (before: a bad
// generation and an apply and rollback of the files every ~11 s). Once
// Asterisk answers again, the next index is taken and reloaded.
func TestMeshWaitsForAsterisk(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	a, b := h.node("a"), h.node("b")
	a.pin(b)
	b.pin(a)
	for _, n := range []*tnode{a, b} {
		n.Jobs = []tjob{{Name: "conf", Mode: config.ModeMesh, Targets: []string{"a", "b"}}}
	}
	const v1, v2 = "[from-internal]\nexten => 100,1,Answer()\n", "[from-internal]\nexten => 100,1,Answer()\nexten => 101,1,Hangup()\n"
	a.write("extensions.conf", v1, 0o644)

	simLog := filepath.Join(h.base, "b-asterisk.log")
	sim, sess, blog := simAsterisk(t, amisim.Config{Secret: astSecret, ConfigDir: b.tree, LogPath: simLog}, h.base, b.name, b.log, astSecret, func() { b.stopQuiet() })
	a.start()
	astStart(b, blog, Options{AfterApply: &AsteriskActions{AMI: sess, LogPath: simLog, LogSettle: 30 * time.Millisecond, Log: blog}})
	sameContent(t, "the first version on both", a, b)
	eventually(t, waitLimit, "b took the first version and reloaded", func() error {
		g, ok, err := b.a().store.Latest("conf", store.StateGood)
		if err != nil || !ok || g.Number == 0 {
			return fmt.Errorf("no good generation yet (%v)", err)
		}
		if sim.Count("Reload", "Module", "pbx_config.so") == 0 {
			return fmt.Errorf("no reload of pbx_config.so yet")
		}
		return nil
	})

	gens := func() int {
		g, err := b.a().store.Generations("conf")
		if err != nil {
			t.Fatal(err)
		}
		return len(g)
	}
	before := gens()
	amiDown(t, sim, sess)
	a.write("extensions.conf", v2, 0o644)
	eventually(t, waitLimit, "b leaves a's version for later", func() error {
		if !b.logHas("cannot take a member's versions", "peer=a") {
			return fmt.Errorf("not yet")
		}
		return nil
	})
	if got := string(b.read("extensions.conf")); got != v1 {
		t.Fatalf("b holds %q while its Asterisk is down, want the version it had", got)
	}
	if n := gens(); n != before {
		t.Fatalf("b recorded %d generations while its Asterisk was down, want none", n-before)
	}
	if b.logHas("rolling back") {
		t.Fatal("b applied a's version and rolled it back while its Asterisk was down")
	}

	reloads := sim.Count("Reload", "Module", "pbx_config.so")
	if err := sim.Up(); err != nil {
		t.Fatal(err)
	}
	sameContent(t, "a's version on b once its Asterisk is back", a, b)
	eventually(t, waitLimit, "b reloads the dialplan", func() error {
		if sim.Count("Reload", "Module", "pbx_config.so") <= reloads {
			return fmt.Errorf("no reload of pbx_config.so since Asterisk came back")
		}
		return nil
	})
}

// TestPGMeshWaitsForAsterisk: the same for a postgres mesh job whose rule
// reloads PJSIP when ps_endpoints changes: b, with its Asterisk down,
// leaves a's row for later instead of writing it and compensating it at
// every index a repeats, and takes it once Asterisk answers.
func TestPGMeshWaitsForAsterisk(t *testing.T) {
	t.Parallel()
	nodes, dsns := pgMeshTrio(t, false)
	b := nodes[1]
	b.config += "\n  [[job.rule]]\n  match = [\"ps_endpoints\"]\n  action = \"reload res_pjsip.so\"\n"
	sim, sess, _ := simAsterisk(t, amisim.Config{Secret: astSecret, ConfigDir: t.TempDir(), LogPath: filepath.Join(b.dir, "asterisk.log")}, b.dir, b.name, b.log, astSecret, b.stop)
	b.tune = func(o *Options) { o.AfterApply = &AsteriskActions{AMI: sess} }
	ca, cb, _ := pgMeshStart(t, nodes, dsns, "from-a")
	eventually(t, waitLimit, "b reloaded PJSIP for a's row", func() error {
		if sim.Count("Reload", "Module", "res_pjsip.so") == 0 {
			return fmt.Errorf("no reload yet")
		}
		return nil
	})
	amiDown(t, sim, sess)
	pgExec(t, ca, "UPDATE ps_endpoints SET context = 'changed-on-a' WHERE id = '100'")
	eventually(t, waitLimit, "b leaves a's row for later", func() error {
		if !strings.Contains(b.log.String(), "cannot take a member's versions") {
			return fmt.Errorf("not yet")
		}
		return nil
	})
	if strings.Contains(b.log.String(), "rolling back") {
		t.Fatal("b wrote a's row and compensated it while its Asterisk was down")
	}
	var got string
	if err := cb.QueryRow(context.Background(), "SELECT context FROM ps_endpoints WHERE id = '100'").Scan(&got); err != nil || got != "from-a" {
		t.Fatalf("b's row while its Asterisk is down: %q %v, want the one it had", got, err)
	}
	if err := sim.Up(); err != nil {
		t.Fatal(err)
	}
	pgSame(t, "a's row on b once its Asterisk is back", ca, cb)
}
