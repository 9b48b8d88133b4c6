package syncer

import (
	"context"
	"errors"
	"fmt"

	"pbxsync/internal/wire"
)

// SyncNow is "sync now" of the dashboard and `pbxsync sync`: it asks job's
// loop to act at once instead of waiting for its watcher or its timers,
// and waits until it has.
//
// On a source the whole tree is rescanned (a change the watcher has not
// delivered yet, or missed, becomes a generation now) and the newest
// generation is announced at once to every target that does not hold it.
// On a push target the tree is rescanned (a local edit is restored from the
// source's version, as push mode does) and the source is asked for a
// complete announcement. A held target is refused: resume it first.
func (a *Agent) SyncNow(ctx context.Context, jobName string) error {
	j := a.job(jobName)
	if j == nil {
		return fmt.Errorf("no job %q", jobName)
	}
	reply := make(chan error, 1)
	select {
	case j.inbox <- event{syncNow: reply}:
	case <-ctx.Done():
		return ctx.Err()
	}
	select {
	case err := <-reply:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// syncNow carries out SyncNow in the job's loop.
func (j *job) syncNow(ctx context.Context) error {
	if !j.isSource && j.held != 0 {
		return fmt.Errorf("job %q is held by the operator at generation %d; resume it first", j.cfg.Name, j.held)
	}
	j.log.Info("sync now: rescanning the whole tree", "reason", "operator")
	if err := j.scanAll(ctx); err != nil {
		j.setError("rescan failed: " + err.Error())
		return fmt.Errorf("job %q: rescan %s: %w", j.cfg.Name, j.cfg.Path, err)
	}
	newest := j.latest
	if err := j.settleLocalChanges(ctx); err != nil {
		j.setError(err.Error())
		return fmt.Errorf("job %q: %w", j.cfg.Name, err)
	}
	if j.isSource {
		if j.latest != nil {
			j.window.forced = j.latest.Number // sent now, window or not
		}
		if j.latest == newest || len(j.window.set) > 0 { // no new generation, which would have been announced
			j.announce(true)
		}
		return nil
	}
	if err := j.sendUp(&wire.Result{Job: j.cfg.Name, State: wire.ResultResync}); err != nil {
		return fmt.Errorf("job %q: ask source %s for its newest generation: %w", j.cfg.Name, j.cfg.Source, err)
	}
	return nil
}

// syncNow carries out SyncNow for a postgres job: a source collects the
// captured changes now and announces its newest generation to every target
// that does not hold it.
func (p *pgJob) syncNow(ctx context.Context) error {
	if !p.j.isSource {
		return errors.New("sync now on a postgres target: run it on the source " + p.j.cfg.Source)
	}
	if err := p.collect(ctx); err != nil {
		return fmt.Errorf("job %q: collect changes: %w", p.j.cfg.Name, err)
	}
	if p.latest != nil {
		p.j.window.forced = p.latest.number // sent now, window or not
	}
	p.announce(true)
	return nil
}
