package syncer

import (
	"testing"

	"pbxsync/internal/config"
	"pbxsync/internal/store"
	"pbxsync/internal/wire"
	"pbxsync/syncer/core"
)

// TestPushPolicyNames: syncer/core names the answer states and orders it
// decides on itself (it imports neither wire nor config); they must be
// the ones on the wire and in the config.
func TestPushPolicyNames(t *testing.T) {
	t.Parallel()
	for _, c := range [][2]string{
		{core.StateGood, string(store.StateGood)},
		{core.StateBad, string(store.StateBad)},
		{core.StateApplying, string(store.StateApplying)},
		{core.StateResync, wire.ResultResync},
		{core.StateHeld, wire.ResultHeld},
		{core.OrderParallel, config.OrderParallel},
		{core.OrderRolling, config.OrderRolling},
	} {
		if c[0] != c[1] {
			t.Errorf("core says %q where the wire or config says %q", c[0], c[1])
		}
	}
}
