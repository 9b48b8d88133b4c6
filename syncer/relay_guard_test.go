package syncer

import (
	"crypto/ed25519"
	"fmt"
	"testing"

	"pbxsync/internal/index"
	"pbxsync/internal/wire"
)

// TestSitesRelayReplayAfterRestart: a far target keeps the newest version
// relayed to it across a restart, so a relay replaying an older
// announcement (genuinely signed by the origin) is still refused.
func TestSitesRelayReplayAfterRestart(t *testing.T) {
	t.Parallel()
	a, b, _, d := sitesFarm(t, "")
	startSites(t, a, b, d) // c stays down: d hears only through b
	a.write("extensions.conf", seedExtensions+"; two\n", 0o644)
	converged(t, "a second generation", a, b, d)
	waitGood(t, d, "conf")
	js, _ := d.jobStatus("conf")
	d.restart()
	waitGood(t, d, "conf")

	// the origin's genuine announcement of version 1, with other content
	old := index.Of(index.Item{Path: "extensions.conf", Kind: index.KindFile, Mode: 0o644, Size: 4, Hash: index.Sum([]byte("old\n"))})
	msg := &wire.Announce{Job: "conf", Version: 1, Origin: "a", Items: wire.FromIndex(old)}
	env, err := wire.SealRelay(d.a().mon.Codec(), a.id.Certificate.PrivateKey.(ed25519.PrivateKey), "conf", []string{"d"}, msg)
	if err != nil {
		t.Fatal(err)
	}
	d.a().HandleMessage("b", env)
	eventually(t, waitLimit, "d refuses the replay after its restart", func() error {
		if !d.logHas("refusing a relayed announcement older than one relayed before", "version=1") {
			return fmt.Errorf("not refused yet")
		}
		return nil
	})
	if after, _ := d.jobStatus("conf"); after.Generation != js.Generation || string(d.read("extensions.conf")) != seedExtensions+"; two\n" {
		t.Fatalf("d went from generation %d to %d", js.Generation, after.Generation)
	}
}
