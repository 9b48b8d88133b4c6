package syncer

import (
	"context"
	"errors"
	"sync"
	"time"

	"pbxsync/internal/wire"
)

// A push target whose apply found no room on its file system does not
// answer the announcement (the failure says nothing about the content),
// so the source repeats it every few seconds; each repeat used to cost a
// whole admission and apply that failed again. Instead the target now
// waits for room: it tells the source that it is working on the
// generation ("applying", phase "waiting", about once a second), so the
// source does not repeat it, and once there is room it answers
// "applying" without progress, which the source takes as no answer and
// repeats the announcement at once. Room is the apply's need fitting the
// file system again (statfs each second, see space.go); after a write
// that failed with ENOSPC or EDQUOT, whose need the apply did not know
// (a quota, a file system that filled meanwhile), a backoff that doubles
// with each such failure in a row (spaceBackoff).

// spaceBackoffFirst and spaceBackoffMax bound the wait after a write
// that failed for lack of room.
const (
	spaceBackoffFirst = 10 * time.Second
	spaceBackoffMax   = 5 * time.Minute
)

// spaceBackoff is how long a target waits after the fails-th apply in a
// row that ran out of room as it wrote: 10 s, doubling, at most 5 min.
func spaceBackoff(fails int) time.Duration {
	d := spaceBackoffFirst
	for i := 1; i < fails && d < spaceBackoffMax; i++ {
		d *= 2
	}
	return min(d, spaceBackoffMax)
}

// roomAgain reports whether a wait for room is over at now: the need
// (when known) fits what the file system has free (free, when it could be
// read), or the wait's deadline until passed (a zero until: none).
func roomAgain(need *spaceNeed, free fsSpace, readable bool, now, until time.Time) bool {
	if need != nil && readable && free.fits(*need) {
		return true
	}
	return !until.IsZero() && !now.Before(until)
}

// spaceWait is one wait for room of a push target for the generation the
// source announced as version.
type spaceWait struct {
	j       *job
	peer    string
	version uint64
	need    *spaceNeed // what the apply needs; nil when not known
	until   time.Time  // retry then whatever the room
	stat    func() (fsSpace, bool)

	stopOnce sync.Once
	stopCh   chan struct{}
	done     chan struct{}
}

// waitIfFull starts the wait for room when err, which failed the take of
// the source's version, says a file system had none (isNoSpace); the
// take's progress (prog) ends first. Any wait under way ends too.
func (j *job) waitIfFull(ctx context.Context, peer string, version uint64, err error, prog *progressTracker) {
	if !isNoSpace(err) {
		return
	}
	prog.stop()
	j.stopSpaceWait()
	w := &spaceWait{j: j, peer: peer, version: version, stopCh: make(chan struct{}), done: make(chan struct{}),
		stat: func() (fsSpace, bool) { return fsSpace{}, false }}
	if j.applier != nil {
		w.stat = j.applier.freeSpace
	}
	var ns *NoSpaceError
	if errors.As(err, &ns) {
		j.spaceFails = 0
		w.need = &ns.Full
		w.until = time.Now().Add(spaceBackoffMax) // the need may be off (see applyNeed): try again now and then
	} else {
		j.spaceFails++
		w.until = time.Now().Add(spaceBackoff(j.spaceFails))
	}
	j.spaceWait = w
	j.log.Info("waiting for room on the file system before trying the generation again", "source_version", version, "root", j.cfg.Path,
		"retry_by", w.until.Format(time.RFC3339))
	go w.run(ctx)
}

// stopSpaceWait ends the wait for room under way, if any (a new
// announcement is taken, the job stops).
func (j *job) stopSpaceWait() {
	if w := j.spaceWait; w != nil {
		j.spaceWait = nil
		w.stop()
	}
}

func (w *spaceWait) run(ctx context.Context) {
	defer close(w.done)
	tick := time.NewTicker(progressEvery)
	defer tick.Stop()
	for {
		free, ok := w.stat()
		now := time.Now()
		if roomAgain(w.need, free, ok, now, w.until) {
			w.j.setStatus(func(s *JobStatus) { s.Progress = nil })
			w.j.log.Info("room on the file system again; asking the source for the generation", "source_version", w.version)
			r := &wire.Result{Job: w.j.cfg.Name, Version: w.version, State: "applying", Reason: "room on the file system again"}
			if err := w.j.sendResult(w.peer, r); err != nil {
				w.j.log.Debug("cannot tell the source", "peer", w.peer, "err", err)
			}
			return
		}
		w.publish(free, ok, now)
		select {
		case <-ctx.Done():
			return
		case <-w.stopCh:
			return
		case <-tick.C:
		}
	}
}

// publish puts the wait into the job's status and tells the source that
// the target is on the generation (so that it does not repeat it).
func (w *spaceWait) publish(free fsSpace, readable bool, now time.Time) {
	p := &Progress{Generation: w.version, Phase: wire.PhaseWaiting, ETASeconds: w.until.Sub(now).Seconds(), At: now}
	if w.need != nil {
		p.FilesTotal, p.BytesTotal = w.need.Inodes, w.need.Bytes
		if readable {
			p.Files, p.Bytes = min(free.FreeInodes, w.need.Inodes), min(free.Free, w.need.Bytes)
			if free.TotalInodes == 0 {
				p.Files = p.FilesTotal // not counted: never short
			}
		}
	}
	w.j.setStatus(func(s *JobStatus) { s.State, s.Progress = stateWaitingForRoom, p })
	w.j.sendProgress(w.peer, p)
}

// stop ends the wait and clears what it published.
func (w *spaceWait) stop() {
	w.stopOnce.Do(func() { close(w.stopCh) })
	<-w.done
	w.j.setStatus(func(s *JobStatus) {
		if s.Progress != nil && s.Progress.Phase == wire.PhaseWaiting {
			s.Progress = nil
		}
	})
}

// restartRoom is the room a job that stopped for lack of it waits for on
// each file system it writes (its root's, data_dir's) before it starts
// again, beside what an apply leaves to others (spaceReserve): a start
// rescans the whole tree (a 100k job: ~9 s of CPU), so a job whose store
// is full no longer starts again every minute only to fail at the first
// write. It starts again anyway after spaceBackoffMax.
const restartRoom = 64 << 20

// roomToRestart reports whether every file system of frees (readable
// ones) has restartRoom free beside its reserve.
func roomToRestart(frees []fsSpace) bool {
	for _, f := range frees {
		if !f.fits(spaceNeed{Bytes: restartRoom, Inodes: 1}) {
			return false
		}
	}
	return true
}

// waitToRestart waits, after j stopped with err, until the job may start
// again: after backoff, or for an error that says a file system is full
// (isNoSpace) until there is room on those of its root and of data_dir
// (roomToRestart, polled every progressEvery), at most spaceBackoffMax.
// It reports false when ctx ends first.
func (a *Agent) waitToRestart(ctx context.Context, j *job, err error, backoff time.Duration) bool {
	if !isNoSpace(err) {
		select {
		case <-ctx.Done():
			return false
		case <-time.After(backoff):
			return true
		}
	}
	dirs := []string{j.cfg.Path, a.cfgSnapshot().Node.DataDir}
	deadline := time.NewTimer(spaceBackoffMax)
	defer deadline.Stop()
	tick := time.NewTicker(progressEvery)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return false
		case <-deadline.C:
			return true
		case <-tick.C:
		}
		var frees []fsSpace
		for _, d := range dirs {
			if f, ok := statSpace(d); ok {
				frees = append(frees, f)
			}
		}
		if roomToRestart(frees) {
			a.log.Info("room on the file system again; starting the job", "job", j.cfg.Name)
			return true
		}
	}
}
