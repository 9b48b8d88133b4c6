package syncer

import (
	"fmt"
	"strings"
	"testing"
)

// TestE2EDownTargetShowsDownSince: when a target goes away, the source's
// row for it says "down since T" instead of its last answer, the peer row
// carries the time too, and the row shows the target's answer again once it
// is back.
func TestE2EDownTargetShowsDownSince(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	a, b := h.pair("")
	a.write("x.conf", "v1\n", 0o644)
	a.start()
	b.start()
	converged(t, "initial sync", a, b)
	row := func() (TargetStatus, error) {
		js, _ := a.jobStatus("conf")
		for _, ts := range js.Targets {
			if ts.Name == "b" {
				return ts, nil
			}
		}
		return TargetStatus{}, fmt.Errorf("no row for b in %+v", js.Targets)
	}
	eventually(t, waitLimit, "b good", func() error {
		ts, err := row()
		if err == nil && ts.State != "good" {
			err = fmt.Errorf("row %+v", ts)
		}
		return err
	})
	b.stop()
	eventually(t, waitLimit, "b's row says down since", func() error {
		ts, err := row()
		if err == nil && (ts.State != PeerDownState || !strings.HasPrefix(ts.Reason, "down since ")) {
			err = fmt.Errorf("row %+v", ts)
		}
		return err
	})
	for _, p := range a.a().Status().Peers {
		if p.Name == "b" && (p.Connected || p.DownSince.IsZero()) {
			t.Fatalf("peer row of b: connected %v, down since %v", p.Connected, p.DownSince)
		}
	}
	b.start()
	eventually(t, waitLimit, "b good again", func() error {
		ts, err := row()
		if err == nil && (ts.State != "good" || ts.Reason != "") {
			err = fmt.Errorf("row %+v", ts)
		}
		return err
	})
	for _, p := range a.a().Status().Peers {
		if p.Name == "b" && !p.DownSince.IsZero() {
			t.Fatalf("peer b is up but has down_since %v", p.DownSince)
		}
	}
}
