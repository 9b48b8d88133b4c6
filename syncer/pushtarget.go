package syncer

import (
	"context"

	"pbxsync/internal/wire"
	"pbxsync/syncer/core"
)

// announcement is one announcement a push target decides on: the part
// that differs between a files job (target.go) and a postgres job
// (pgtarget.go) — how it is read, checked against the local state and
// taken. The decision is core.Admit's; takeAnnouncement carries it out.
type announcement interface {
	// version is the source version announced.
	version() uint64
	// offer is what is known before reading it.
	offer() core.Offer
	// read reads it into the facts core.Admit asks for.
	read() (core.ReadFacts, error)
	// check looks at the local state. An error with a Refusal is
	// returned after the answer "bad" (it stops the job).
	check(ctx context.Context) (core.Checked, error)
	// holding is the generation that holds it, for an answer "good".
	holding() uint64
	// resync is the message that asks the source for a complete
	// announcement.
	resync() wire.Message
	// take fetches, applies and checks it; the answer is nil when
	// there is none to give now (the source repeats the announcement).
	take(ctx context.Context) (*wire.Result, error)
	// done ends its handling (after the answer).
	done()
}

// acceptsAnnouncement is the role check of a push target: peer may push
// this job here only as its source, or as the relay of this node's site
// that passed on an announcement signed by the source (onRelay checked
// the signature; relayedBy says it did).
func (j *job) acceptsAnnouncement(peer string) bool {
	if core.FromSource(j.a.node, j.cfg.Source, peer) || (!j.isSource && j.relayedBy(peer)) {
		return true
	}
	j.log.Warn("refusing an announcement: the config does not name this peer as the job's source", "peer", peer, "source", j.cfg.Source)
	return false
}

// takeAnnouncement carries out core.Admit's verdicts on an announcement of
// peer, the job's source: it reads and checks what the verdicts ask for,
// and answers. An error leaves the announcement unanswered (the source
// repeats it).
func (j *job) takeAnnouncement(ctx context.Context, peer string, a announcement) error {
	defer a.done()
	o := a.offer()
	var stop error // returned after the answer
	for {
		switch v := core.Admit(o); v {
		case core.Read:
			r, err := a.read()
			if err != nil {
				return err
			}
			o.Read = &r
		case core.Check:
			c, err := a.check(ctx)
			if err != nil && c.Refusal == "" {
				return err
			}
			o.Checked, stop = &c, err
		case core.AnswerHeld:
			j.answer(peer, &wire.Result{Job: j.cfg.Name, Version: a.version(), Generation: o.Held, State: ResultHeld, Reason: heldText(o.Held)})
			return nil
		case core.AnswerHolds:
			j.answer(peer, &wire.Result{Job: j.cfg.Name, Version: a.version(), Generation: a.holding(), State: "good"})
			return nil
		case core.AnswerBad:
			reason := o.Read.Bad
			if o.Checked != nil {
				reason = o.Checked.Refusal
			}
			j.answer(peer, &wire.Result{Job: j.cfg.Name, Version: a.version(), State: "bad", Reason: reason})
			return stop
		case core.AskResync:
			j.answer(peer, a.resync())
			return nil
		case core.Take:
			r, err := a.take(ctx)
			if r != nil {
				j.answer(peer, r)
			}
			j.rescanPending(ctx) // what the apply wrote, once the source has the answer
			return err
		}
	}
}

// answer is the one place a push target (files or postgres) answers an
// announcement of the job's source; an answer (Result, RowsHave) to an
// announcement a relay passed on goes back its way (sendResult).
func (j *job) answer(peer string, m wire.Message) {
	if err := j.sendResult(peer, m); err != nil {
		j.log.Debug("cannot send result", "peer", peer, "err", err)
	}
}
