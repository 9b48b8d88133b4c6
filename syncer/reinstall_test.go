package syncer

import (
	"os"
	"testing"

	"pbxsync/internal/config"
	"pbxsync/internal/identity"
)

// TestE2EReinstalledTargetComesBack: a target reinstalled from scratch
// (empty tree, empty data_dir, so a new node key that the admin pins on
// the source with a reload) gets the whole tree back from its source,
// modes and subdirectories included, with nobody acting on the target.
func TestE2EReinstalledTargetComesBack(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	a, b := h.pair("")
	a.write("extensions.conf", seedExtensions, 0o644)
	a.write("pjsip.conf", "[transport-udp]\ntype=transport\n", 0o640)
	a.write("sounds/en/welcome.wav", string(randBytes(7, 300_000)), 0o644)
	a.write("keys/tls.key", "secret key\n", 0o600)
	a.start()
	b.start()
	converged(t, "initial sync", a, b)
	waitGood(t, b, "conf")

	b.stop()
	for _, p := range []string{b.data, b.tree} {
		if err := os.RemoveAll(p); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.MkdirAll(b.tree, 0o755); err != nil {
		t.Fatal(err)
	}
	id, err := identity.LoadOrCreate(b.data)
	if err != nil {
		t.Fatal(err)
	}
	b.id = id
	a.Peers = nil
	a.pin(b)
	cfg, err := config.Parse(a.data+"/../pbxsync.toml", []byte(a.configText()))
	if err != nil {
		t.Fatal(err)
	}
	if err := a.a().Reload(cfg); err != nil { // what SIGHUP does
		t.Fatal(err)
	}
	a.write("extensions.conf", seedExtensions+"exten => 300,1,Answer()\n", 0o644)
	b.start()
	converged(t, "the reinstalled target", a, b)
	waitGood(t, b, "conf")
}
