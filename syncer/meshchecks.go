package syncer

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"pbxsync/internal/index"
	"pbxsync/syncer/core"
)

// A mesh member's checks can fail whatever the content: a check with a
// typo, a missing binary, an Asterisk that refuses every reload. Rejecting
// a version then would revert it on every member, whose checks reject the
// revert in turn, without end (every member recording generations and
// conflicts, Asterisk reloading all the time). So a failed check rejects
// a version only when the checks pass again on the content rolled back
// (meshCheckBefore, from meshApplyTree and pgMeshEdge.apply); when they
// fail there too, the fault is this node's: the version is not taken now
// (Applied with an error: no revert, no conflict record, no version of
// this node's own), and while that lasts (meshState.down) no member's
// version that changes the data is applied. Each member's last index
// waits; the checks run again on the content here after a backoff
// (core.ChecksRetryAfter) and at once when the configuration is reloaded
// (Agent.Reload) or a sync is asked for (sync --now); once they pass, the
// waiting indexes are decided again.

// checksDown is a mesh member's state while its checks fail on the
// content they had before too.
type checksDown struct {
	reason string   // the checks' error on the content rolled back
	paths  []string // the changed paths of the version that found it: the checks run for them
	tries  int      // runs of the checks that failed (the first is the one after the rollback)
	next   time.Time
	// waiting holds, per member whose versions were not taken, its last
	// index (nil until the loop hands it over: meshRemote).
	waiting map[string][]index.Item
}

// checksFailHere is the error of an apply that was not carried out, or
// rolled back, because this node's checks fail on the content they had
// before too.
type checksFailHere struct{ reason string }

func (e *checksFailHere) Error() string {
	return "not taken now: checks fail here on the content they had before too: " + e.reason
}

// meshCheckBefore runs the job's actions and checks again on the content
// put back after a version of peer's failed them (gen: the generation
// that holds that content, changed: the version's paths). nil: they pass
// there, the version is at fault. Otherwise the error of the apply: the
// fault is this node's (a *checksFailHere), or Asterisk went away meanwhile
// (not taken now, as for ErrAsteriskUnavailable).
func (j *job) meshCheckBefore(ctx context.Context, peer string, gen uint64, changed []string) error {
	err := j.a.after.AfterApply(ctx, &j.cfg, gen, changed)
	switch {
	case err == nil:
		return nil
	case errors.Is(err, ErrAsteriskUnavailable) || ctx.Err() != nil:
		return fmt.Errorf("not taken now (the checks of the content put back: %w)", err)
	}
	return j.meshChecksFailed(peer, changed, err.Error())
}

// meshChecksFailed notes that this node's checks failed on the content
// put back after a version of peer's failed them (reason), with paths the
// version changed, and returns the error of that apply.
func (j *job) meshChecksFailed(peer string, paths []string, reason string) error {
	ms := j.mesh
	now := time.Now()
	if ms.down == nil {
		// a check that passed once and failed again goes on from its
		// last wait (a flaky check): only a version taken starts anew
		ms.down = &checksDown{waiting: map[string][]index.Item{}, tries: ms.downTries}
	}
	d := ms.down
	d.reason, d.paths = reason, append([]string(nil), paths...)
	d.tries++
	d.next = now.Add(time.Duration(core.ChecksRetryAfter(int64(j.a.checksRetry), d.tries)))
	if _, ok := d.waiting[peer]; !ok {
		d.waiting[peer] = nil
	}
	j.log.Warn("checks fail here on the content they had before too; a member's versions are not taken until they pass", "peer", peer, "reason", reason, "next_try", d.next.Sub(now).Round(time.Millisecond))
	j.setChecksDownStatus()
	return &checksFailHere{reason: reason}
}

// meshHeld returns the error of an apply of peer's versions that would
// change the data while this node's checks fail on the content before
// too (nil when they do not): it waits for the checks to pass here.
func (j *job) meshHeld(peer string) error {
	d := j.mesh.down
	if d == nil {
		return nil
	}
	if _, ok := d.waiting[peer]; !ok {
		d.waiting[peer] = nil
		j.setChecksDownStatus()
	}
	return &checksFailHere{reason: d.reason}
}

// setChecksDownStatus says in the job's status why the members' versions
// wait and when the checks run again.
func (j *job) setChecksDownStatus() {
	d := j.mesh.down
	peers := d.members()
	msg := fmt.Sprintf("checks fail here on the content they had before too: fix the check or Asterisk on this node; versions of %s wait (checks failed %d times, next run at %s, or at a reload or sync --now): %s",
		strings.Join(peers, ", "), d.tries, d.next.Format(time.TimeOnly), d.reason)
	j.setStatus(func(s *JobStatus) { s.State, s.LastError = stateChecksFailing, msg })
}

// meshRemote hands the machine peer's index items (admitted by this
// node's filters), and keeps them while its versions wait for this node's
// checks.
func (j *job) meshRemote(ctx context.Context, peer string, items []index.Item) {
	ms := j.mesh
	j.carryMesh(ctx, ms.m.Step(core.RemoteIndex{Time: time.Now().UnixNano(), Peer: peer, Items: items}))
	if d := ms.down; d != nil {
		if _, ok := d.waiting[peer]; ok {
			d.waiting[peer] = items
		}
	}
}

// meshRetryChecks runs the job's actions and checks again on the content
// here once the wait is over (at once with now set): while they fail the
// wait grows; once they pass, the waiting members' indexes are decided
// again.
func (j *job) meshRetryChecks(ctx context.Context, now bool) {
	ms := j.mesh
	if ms == nil || ms.down == nil {
		return
	}
	d := ms.down
	if !now && time.Now().Before(d.next) {
		return
	}
	var gen uint64
	if j.latest != nil {
		gen = j.latest.Number
	}
	err := j.a.after.AfterApply(ctx, &j.cfg, gen, d.paths)
	if ctx.Err() != nil {
		return
	}
	j.setStatus(func(s *JobStatus) { s.CheckRetries++ })
	if err != nil {
		d.reason = err.Error()
		d.tries++
		d.next = time.Now().Add(time.Duration(core.ChecksRetryAfter(int64(j.a.checksRetry), d.tries)))
		j.log.Info("checks still fail here on the content it holds", "reason", d.reason, "tries", d.tries, "next_try", time.Until(d.next).Round(time.Millisecond), "asterisk_unavailable", errors.Is(err, ErrAsteriskUnavailable))
		j.setChecksDownStatus()
		return
	}
	j.log.Info("checks pass here again; taking the members' waiting versions", "members", len(d.waiting))
	ms.down, ms.downTries = nil, d.tries
	j.setStatus(func(s *JobStatus) { s.State, s.LastError = "good", "" })
	for _, p := range d.members() {
		if items := d.waiting[p]; items != nil {
			j.meshRemote(ctx, p, items)
		}
	}
}

// members returns the members whose versions wait, sorted.
func (d *checksDown) members() []string {
	out := make([]string, 0, len(d.waiting))
	for p := range d.waiting {
		out = append(out, p)
	}
	sort.Strings(out)
	return out
}
