package syncer

import (
	"testing"
	"time"

	"pbxsync/internal/wire"
)

// TestPublishDue: a change of health goes out at once; a change of the
// jobs' lines alone only once they held for jobsSettle (so a generation's
// own exchange is not joined by a State each way); anything after
// publishMax; nothing unchanged before it.
func TestPublishDue(t *testing.T) {
	t.Parallel()
	base := func() *wire.State {
		return &wire.State{Node: "a", Healthy: true, Asterisk: "up", Jobs: []wire.JobState{{Job: "conf", Generation: 3, State: "good"}}}
	}
	newGen := base()
	newGen.Jobs[0].Generation = 4
	down := base()
	down.Asterisk, down.AsteriskError = "down", "login failed"
	loadOnly := base()
	loadOnly.Load1 = 7.5
	for _, tc := range []struct {
		name      string
		last, st  *wire.State
		sinceSent time.Duration
		jobsHeld  time.Duration
		want      bool
	}{
		{"first state", nil, base(), 0, 0, true},
		{"unchanged", base(), base(), time.Second, 10 * time.Second, false},
		{"load only", base(), loadOnly, time.Second, 10 * time.Second, false},
		{"unchanged, repeat due", base(), base(), publishMax, 10 * time.Second, true},
		{"new generation, just now", base(), newGen, time.Second, 0, false},
		{"new generation, settling", base(), newGen, 5 * time.Second, jobsSettle - time.Millisecond, false},
		{"new generation, settled", base(), newGen, 5 * time.Second, jobsSettle, true},
		{"new generation, repeat due", base(), newGen, publishMax, 0, true},
		{"asterisk down", base(), down, 0, 0, true},
	} {
		if got := publishDue(tc.last, tc.st, tc.sinceSent, tc.jobsHeld); got != tc.want {
			t.Errorf("%s: due %v, want %v", tc.name, got, tc.want)
		}
	}
}
