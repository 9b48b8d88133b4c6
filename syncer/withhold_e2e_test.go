package syncer

import (
	"context"
	"fmt"
	"testing"
	"time"

	"pbxsync/internal/wire"
)

// TestSitesRelayWithholds: dc2's preferred relay b (a test peer with b's
// identity) stays connected and answers every announcement for itself but
// hands nothing on. The origin notices that the targets behind it do not
// answer what b answered, passes b over and reaches c and d through c.
func TestSitesRelayWithholds(t *testing.T) {
	t.Parallel()
	a, b, c, d := sitesFarm(t, "")
	a.tune = func(o *Options) { o.RelayPatience = 2 * time.Second }
	startSites(t, a, c, d) // b is down: c relays
	eventually(t, waitLimit, "c relays for dc2", func() error {
		if v := vias(a); v["d"] != "c" {
			return fmt.Errorf("vias %v", v)
		}
		return nil
	})

	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	defer cancel()
	p, err := dialTestPeer(ctx, b, a.addr())
	if err != nil {
		t.Fatal(err)
	}
	defer p.close()
	go p.stall(ctx)
	withheld := make(chan uint64, 64)
	go func() {
		for {
			m, err := p.codec.Read(p.ctrl)
			if err != nil {
				return
			}
			env, ok := m.(*wire.Relay)
			if !ok {
				continue
			}
			inner, err := wire.OpenRelay(p.codec, env)
			if err != nil {
				continue
			}
			if an, ok := inner.(*wire.Announce); ok {
				// good for itself, nothing handed on
				p.sendMessage(&wire.Result{Job: "conf", Version: an.Version, Generation: 1, State: "good"})
				select {
				case withheld <- an.Version:
				default:
				}
			}
		}
	}()
	eventually(t, waitLimit, "b is dc2's relay", func() error {
		a.write("extensions.conf", seedExtensions+fmt.Sprintf("; %d\n", time.Now().UnixNano()), 0o644)
		select {
		case <-withheld:
			return nil
		case <-time.After(time.Second):
			return fmt.Errorf("b was sent nothing")
		}
	})
	converged(t, "c and d past the withholding relay", a, c, d)
	eventually(t, waitLimit, "the origin routes around b", func() error {
		if v := vias(a); v["d"] != "c" || v["c"] != "" {
			return fmt.Errorf("vias %v, want d via c", v)
		}
		return nil
	})
	if !a.logHas("a relay answered a version but the targets behind it did not", "relay=b") {
		t.Error("the origin did not say why it passed b over")
	}
}
