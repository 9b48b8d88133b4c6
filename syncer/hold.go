package syncer

import (
	"context"
	"errors"
	"fmt"

	"pbxsync/internal/store"
	"pbxsync/internal/wire"
)

// ResultHeld is the Result state of a held push target (wire.ResultHeld).
// A source does not re-announce to a held target, and a rolling rollout
// goes on past it.
const ResultHeld = wire.ResultHeld

// ErrTargetRollback is returned by a plain rollback on a push target: the
// source would restore its version at once.
var ErrTargetRollback = errors.New("rollback on a push target")

// heldText is the status line of a held job.
func heldText(gen uint64) string { return fmt.Sprintf("held by operator at %d", gen) }

// holdAt rolls a push target back to generation g and holds it there: the
// newer generations are marked rolled back, the hold is saved in the store
// (it survives a restart), and announcements are answered "held" until
// resume.
func (j *job) holdAt(ctx context.Context, g *store.Generation) error {
	if err := j.restore(ctx, g.Number, g.Index); err != nil {
		return fmt.Errorf("roll back to generation %d: %w", g.Number, err)
	}
	reason := fmt.Sprintf("rolled back by operator to generation %d (held)", g.Number)
	gens, err := j.a.store.Generations(j.cfg.Name)
	if err != nil {
		return err
	}
	var links []store.Link // oldest first: the first link at a path is what it held before
	for _, x := range gens {
		if x.Number > g.Number {
			links = append(links, x.Links...)
		}
	}
	j.putBackLinks(ctx, links)
	for _, x := range gens {
		if x.Number > g.Number && x.State == store.StateGood {
			if err := j.a.store.SetState(j.cfg.Name, x.Number, store.StateRolledBack, reason); err != nil {
				j.log.Warn("cannot mark a replaced generation", "generation", x.Number, "err", err)
			}
		}
	}
	j.latest = g
	j.held = g.Number
	j.dirty = true
	j.save()
	j.log.Warn("push target rolled back and held by the operator; new generations wait until `pbxsync resume`", "generation", g.Number)
	j.setStatus(func(s *JobStatus) {
		s.Generation, s.State, s.Held, s.LastError = g.Number, ResultHeld, heldText(g.Number), ""
	})
	// tell the source at once, so that its status says so
	if err := j.sendUp(&wire.Result{Job: j.cfg.Name, Generation: g.Number, State: ResultHeld, Reason: heldText(g.Number)}); err != nil {
		j.log.Debug("cannot tell the source about the hold", "err", err)
	}
	return nil
}

// resume ends an operator's hold: the job takes the source's newest
// generation again (it asks the source for a complete announcement).
func (j *job) resume() error {
	if j.isSource {
		return fmt.Errorf("job %q: this node is its source; only a push target can be held", j.cfg.Name)
	}
	if j.held == 0 {
		return fmt.Errorf("job %q is not held", j.cfg.Name)
	}
	gen := j.held
	j.held = 0
	j.dirty = true
	j.save()
	j.log.Info("hold released by the operator; taking the source's generations again", "was_held_at", gen)
	j.setStatus(func(s *JobStatus) { s.State, s.Held = string(store.StateGood), "" })
	if err := j.sendUp(&wire.Result{Job: j.cfg.Name, State: wire.ResultResync}); err != nil {
		j.log.Debug("cannot ask the source for its newest generation; it announces again when it reconnects or within seconds", "err", err)
	}
	return nil
}

// Resume ends the operator's hold on job (see rollback --hold) and waits
// until the job's loop has done so.
func (a *Agent) Resume(ctx context.Context, jobName string) error {
	j := a.job(jobName)
	if j == nil {
		return fmt.Errorf("no job %q", jobName)
	}
	req := &rollbackReq{resume: true, reply: make(chan rollbackResult, 1)}
	select {
	case j.inbox <- event{rollback: req}:
	case <-ctx.Done():
		return ctx.Err()
	}
	select {
	case r := <-req.reply:
		return r.err
	case <-ctx.Done():
		return ctx.Err()
	}
}
