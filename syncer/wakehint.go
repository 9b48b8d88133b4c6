package syncer

import (
	"context"
	"time"

	"pbxsync/internal/config"
	"pbxsync/internal/wire"
	"pbxsync/remotemon"
)

// A files push job lets go of a large newest index while idle (park.go)
// on its source and on its targets alike, and the first change after such
// a spell reads it back on both: ~100 ms each at 100,000 files, most of
// it the faults of the fresh heap the map takes. In series (the source's
// read-back, its record, then the target's read-back when the
// announcement comes, then the target's copy of it for the apply) that
// is most of the first edit's latency. So a source that wakes for a
// local change first tells its targets (wire.Wake), and a target reads
// its index back and copies it for the apply (readySpare) while the
// source reads back its own and records the change.

// wakeHintTimeout bounds the sending of one Wake.
const wakeHintTimeout = 5 * time.Second

// wakeTargets sends a Wake to each target of the job that is connected,
// without waiting: a hint lost (no connection, an agent that predates
// it) costs the target its read-back after the announcement, as before.
// A job that may announce to some of its targets only, or later (sync
// windows, a rolling order), wakes none: a target woken for nothing holds
// its index and a copy of it until it is idle again.
func (j *job) wakeTargets(ctx context.Context) {
	if len(j.window.set) > 0 || (j.cfg.Order != "" && j.cfg.Order != config.OrderParallel) {
		return
	}
	for peer := range j.targets {
		if !j.a.mon.Connected(peer) {
			continue
		}
		go sendWake(ctx, j.a.mon, peer, j.cfg.Name)
	}
}

// sendWake writes a Wake for job to peer on a stream of its own.
func sendWake(ctx context.Context, mon *remotemon.Monitor, peer, job string) {
	ctx, cancel := context.WithTimeout(ctx, wakeHintTimeout)
	defer cancel()
	s, err := mon.OpenStream(ctx, peer)
	if err != nil {
		return
	}
	s.SetDeadline(time.Now().Add(wakeHintTimeout))
	if err := s.WriteMessage(&wire.Wake{Job: job}); err != nil {
		s.Abort()
		return
	}
	s.Close()
}

// takeWake is a target's answer to its source's Wake: the job's loop
// reads the newest index back if it let go of it (onEvent wakes it for
// every event) and readies the spare the next announcement is applied
// on.
func (j *job) takeWake(peer string) {
	j.post(event{peer: peer, do: func(context.Context) {
		j.log.Debug("its source is making a generation", "peer", peer, "spare_made", j.readySpare())
	}})
}
