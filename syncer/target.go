package syncer

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"pbxsync/internal/index"
	"pbxsync/internal/store"
	"pbxsync/internal/wire"
	"pbxsync/remotemon"
	"pbxsync/syncer/core"
)

// fetchParallel bounds concurrent transfers from the source.
const fetchParallel = 8

// startTarget finds the newest good generation; a generation left
// "applying" by a crash (its journal already rolled forward) gets its
// checks now. Local edits made while the agent was down are overwritten.
func (j *job) startTarget(ctx context.Context) error {
	gens, err := j.a.store.Generations(j.cfg.Name)
	if err != nil {
		return err
	}
	if n := len(gens); n > 0 && gens[n-1].State == store.StateApplying {
		g, err := j.a.store.Generation(j.cfg.Name, gens[n-1].Number)
		if err != nil {
			return err
		}
		j.recorded = g
		prev, _, err := j.a.store.Latest(j.cfg.Name, store.StateGood)
		if err != nil {
			return err
		}
		j.log.Info("finishing a generation interrupted by a restart", "generation", g.Number)
		var before beforeApply
		if prev != nil {
			before = fixedBefore(prev.Index)
			j.latest = prev
		}
		if !Equal(j.states.Index(), g.Index) {
			// stopped before its journal: apply it now, from the store
			if _, err := j.applyIndex(ctx, g.Number, g.Index, false); err != nil {
				if ctx.Err() != nil {
					return ctx.Err()
				}
				j.rollbackFailed(ctx, g, before, "apply failed: "+err.Error(), core.ApplyFailed)
			}
		}
		if g.State == store.StateApplying {
			j.finish(ctx, g, before, time.Time{})
		}
	}
	if j.held != 0 {
		// an operator holds this target (rollback --hold): it stays at
		// that generation across restarts
		g, err := j.a.store.Generation(j.cfg.Name, j.held)
		if err != nil {
			return fmt.Errorf("the generation %d this job is held at: %w", j.held, err)
		}
		j.latest = g
	}
	if j.latest == nil {
		g, ok, err := j.a.store.Latest(j.cfg.Name, store.StateGood)
		if err != nil {
			return err
		}
		if ok {
			j.latest = g
		}
	}
	if n := len(gens); n > 0 && j.recorded == nil && j.latest != nil && j.latest.Number == gens[n-1].Number {
		j.recorded = j.latest
	}
	if j.latest != nil {
		j.keepLastKnown()
		j.setStatus(func(s *JobStatus) { s.Generation, s.State = j.latest.Number, string(store.StateGood) })
		if j.held != 0 {
			j.setStatus(func(s *JobStatus) { s.State, s.Held = ResultHeld, heldText(j.held) })
		}
		if !j.treeHolds(j.latest.Index) {
			drifted := j.drift.list() // where the tree differs (treeHolds tracks them)
			j.log.Warn("the tree changed while the agent was down; restoring generation", "generation", j.latest.Number, "paths", firstN(Changed(subIndex(j.latest.Index, drifted), j.statesAt(drifted)), 10))
			if err := j.restore(ctx, j.latest.Number, j.latest.Index); err != nil {
				j.log.Error("cannot restore", "err", err)
			}
		}
		j.renderAll(ctx, j.latest.Index)
	} else {
		j.setStatus(func(s *JobStatus) { s.State = "waiting" })
	}
	j.retryRenderFailures()
	return nil
}

// onAnnounce applies the source's newest index, unless this node already
// holds it or found it bad before (core.Admit decides; takeAnnouncement
// carries it out).
func (j *job) onAnnounce(ctx context.Context, peer string, m *wire.Announce) {
	if !j.acceptsAnnouncement(peer) {
		return
	}
	j.admitting.j = j
	m, streamed, err := j.parts.AddTo(m, &j.admitting)
	if err != nil {
		j.log.Info("dropping a part of an announcement; the source repeats it", "err", err)
	}
	if m == nil {
		return // more parts to come
	}
	// its items are admitted already when streamed (see wantOf)
	j.admitting.complete = streamed
	if streamed {
		j.taking.Store(keyOfTaking(m))
		defer j.taking.Store(nil)
	}
	_ = j.takeAnnouncement(ctx, peer, &filesAnnouncement{j: j, peer: peer, m: m}) // its errors are in the job's status
}

// takingKey identifies an announcement: its parts and its repeats have
// the same one.
type takingKey struct {
	version, base uint64
	origin        string
	time          int64
}

func keyOfTaking(m *wire.Announce) *takingKey {
	return &takingKey{version: m.Version, base: m.Base, origin: m.Origin, time: m.Time}
}

// repeatOfTaken reports whether m is a part of a repeat of the
// announcement in parts the job is taking. The source repeats an
// announcement every few seconds until the target reports progress; a
// repeat that arrives while the target admits it would wait, decoded,
// in the job's inbox for the whole fetch and apply (each a complete
// index), and be admitted again only to be found held. The receiving
// goroutine drops it instead: the take answers the source, and an
// unanswered take is repeated by it.
func (j *job) repeatOfTaken(m *wire.Announce) bool {
	k := j.taking.Load()
	return k != nil && m.Parts > 0 && *k == *keyOfTaking(m)
}

// filesAnnouncement is an announcement of a files push job: an index,
// complete or the changes against a base, with some content inline.
type filesAnnouncement struct {
	j    *job
	peer string
	m    *wire.Announce

	wasRead bool
	want    index.Index // the index to hold, as admitted
	changed []string    // where want differs from the newest generation (nil: not known)
	// scope: where the tree may differ from want (what the source
	// changed, and what changed here since the newest generation), or
	// nil: anywhere
	scope []string
}

func (a *filesAnnouncement) version() uint64 { return a.m.Version }

func (a *filesAnnouncement) offer() core.Offer { return core.Offer{Held: a.j.held} }

// read rebuilds the announced index and admits it (see wantOf).
func (a *filesAnnouncement) read() (core.ReadFacts, error) {
	j := a.j
	a.wasRead = true
	want, changed, ok := j.wantOf(a.m)
	// its items are in want now: a complete announcement's decoded items
	// (40-60 MB at 100k files) are not held through the whole apply
	a.m.Items = nil
	if !ok {
		return core.ReadFacts{}, nil
	}
	a.want, a.changed = want, changed
	reason, isBad := j.bad[j.digests.of(want).Hash().String()]
	return core.ReadFacts{BaseKnown: true, IsBad: isBad, Bad: reason}, nil
}

// check rescans where the tree may differ from the announced index and
// tells whether the newest generation, in the tree, is that index.
func (a *filesAnnouncement) check(ctx context.Context) (core.Checked, error) {
	j, m, want, changed := a.j, a.m, a.want, a.changed
	if changed != nil && j.drift.knows(j.latest.Index) {
		a.scope = append(append(make([]string, 0, len(changed)+len(j.drift.paths)), changed...), j.drift.list()...)
	}
	if err := j.refreshScope(ctx, want, a.scope); err != nil {
		j.log.Warn("cannot rescan before applying", "err", err)
	}
	if a.scope != nil {
		if sameAt(j.latest.Index, want, changed) && j.treeHolds(j.latest.Index) {
			if identicalAt(j.latest.Index, want, changed) && j.plain.version == m.Version {
				j.plain.gen = j.latest // want is the newest generation's index
			}
			return core.Checked{Holds: true}, nil
		}
	} else if j.latest != nil && Equal(j.latest.Index, want) && j.treeHolds(j.latest.Index) {
		if j.plain.version == m.Version && j.plain.gen == nil && index.SameItems(j.latest.Index, want) {
			// a complete announcement of what this node holds (a repeat,
			// or after the source's restart): the next incremental one is
			// admitted on it by its changes
			j.plain.gen = j.latest
			if j.plain.identity && j.announced.Same(want) {
				j.announced = index.Index{} // it is the newest index: no second copy
			}
		}
		return core.Checked{Holds: true}, nil
	}
	return core.Checked{}, nil
}

func (a *filesAnnouncement) holding() uint64 { return a.j.latest.Number }

func (a *filesAnnouncement) resync() wire.Message {
	return &wire.Result{Job: a.j.cfg.Name, Version: a.m.Version, State: wire.ResultResync}
}

func (a *filesAnnouncement) done() {
	a.j.admitting.settle() // what read did not take
	if a.wasRead {
		a.j.settleAnnouncement()
	}
}

// take fetches what the store lacks of the announced index, records and
// applies it as a generation and runs its actions and checks. Its
// failures are in the job's status; an apply that failed is not
// answered (the source repeats the announcement).
func (a *filesAnnouncement) take(ctx context.Context) (*wire.Result, error) {
	j, peer, m, want, changed, scope := a.j, a.peer, a.m, a.want, a.changed, a.scope
	// what was offered before is in the store now (or fetched below)
	j.stopPrefetch()
	j.stopSpaceWait() // this try finds out whether there is room now
	// need: the part of want whose content may be missing (the rest is the
	// newest generation's, which the store holds)
	need := want
	if changed != nil {
		need = subIndex(want, changed)
	}
	started := time.Now()
	j.setStatus(func(s *JobStatus) { s.State = string(store.StateApplying) })
	prog := j.startProgress(ctx, peer, m.Version)
	j.applier.progress = prog
	defer func() { j.applier.progress = nil; prog.stop() }()
	defer j.applier.dropPrestaged() // what the apply did not take
	j.takeInline(ctx, peer, m.Inline, need)
	// the content the store lacks is looked up once: the fetch gets it,
	// or the tree has it (ensureStored copies that), and the record
	// checks that the store holds all of it
	toGet, fromTree := j.toFetch(need)
	if err := j.fetch(ctx, peer, toGet, prog); err != nil {
		j.log.Warn("fetching from the source failed; will retry on the next announcement", "peer", peer, "err", err)
		j.setStatus(func(s *JobStatus) { s.State, s.LastError = "error", err.Error() })
		j.waitIfFull(ctx, peer, m.Version, err, prog)
		return nil, nil
	}
	if err := j.ensureStored(ctx, fromTree); err != nil {
		j.log.Warn("cannot store the new generation", "err", err)
		j.setStatus(func(s *JobStatus) { s.State, s.LastError = "error", err.Error() })
		j.waitIfFull(ctx, peer, m.Version, err, prog)
		return nil, nil
	}
	j.relayOnward() // its site fetches the content from here now
	// the record (a second or two at 100,000 files) is a phase of its
	// own, not a fetch done with nothing left nor an apply that does not
	// move: changes recorded in the store of those it makes (the store
	// says how many once it checked them; until then the announced ones)
	changes := want.Len()
	if changed != nil {
		changes = len(changed)
	}
	prog.begin(wire.PhaseRecording, uint64(changes), 0)
	g, err := j.generationFor(ctx, m, want, changed, scope, prog.recorded)
	if err != nil {
		j.log.Error("cannot record generation", "err", err)
		j.setStatus(func(s *JobStatus) { s.State, s.LastError = "error", err.Error() })
		return nil, nil
	}
	n := g.Number
	before, rescan, err := j.applyUnscanned(ctx, n, want, false, scope)
	// the rescan of what the apply wrote runs after the answer
	// (takeAnnouncement), or first in the next apply: the rollback's
	// below, when this one failed
	j.pendingRescan = rescan
	if err != nil && ctx.Err() != nil {
		// Shutting down: either nothing was touched (staging) or the
		// journal is rolled forward at the next start; the generation is
		// finished then, not judged now.
		j.log.Info("apply interrupted by shutdown", "generation", n)
		return nil, nil
	}
	if err != nil {
		// An apply that fails (disk full, a file in use) says nothing
		// about the content: roll back, but do not blacklist it; the
		// source repeats its announcement and the next try may succeed.
		reason := "apply failed: " + err.Error()
		if errors.Is(err, ErrNoSpace) {
			// it did not fit and wrote nothing: nothing to put back, and
			// no actions to run again for a tree that did not change
			j.log.Error("the generation does not fit on the file system; nothing was written", "generation", n, "err", err)
			before = nil
		} else {
			j.log.Error("apply failed; rolling back, will retry", "generation", n, "err", err)
		}
		j.rollbackFailed(ctx, g, before, reason, core.ApplyFailed)
		j.waitIfFull(ctx, peer, m.Version, err, prog)
		return nil, nil
	}
	j.spaceFails = 0
	prog.stop() // the checks are no phase of the transfer
	var since time.Time
	if m.Time > 0 {
		since = time.Unix(0, m.Time)
	}
	j.finish(ctx, g, before, since)
	if g.State == store.StateGood && j.latest == g && j.plain.version == m.Version {
		j.plain.gen = g // the next incremental announcement is admitted on it
	}
	if g.State == store.StateGood {
		j.log.Info("applied", "generation", n, "source_version", m.Version, "changed", len(g.Changed), "took", time.Since(started).Round(time.Millisecond))
	}
	return &wire.Result{Job: j.cfg.Name, Version: m.Version, Generation: n, State: string(g.State), Reason: g.Reason}, nil
}

// settleAnnouncement ends the handling of an announcement: the spare is
// settled, and the digest cache lets go of the indexes the job no longer
// holds.
func (j *job) settleAnnouncement() {
	j.settleSpare()
	j.retainDigests()
}

// retainDigests lets the digest cache go of every index the job no
// longer holds.
func (j *job) retainDigests() {
	keep := []index.Index{j.spare.x, j.announced, j.drift.base}
	for _, g := range []*store.Generation{j.latest, j.recorded, j.retry} {
		if g != nil {
			keep = append(keep, g.Index)
		}
	}
	j.digests.retain(keep...)
}

// admitted logs and publishes what an admission refused or changed and
// returns what it admits.
func (j *job) admitted(version uint64, ad admission) index.Index {
	if j.refusalLogged != version {
		j.refusalLogged = version
		if len(ad.refused) > 0 {
			j.log.Warn("refusing paths of an announcement: this node's job does not admit them", "source_version", version, "paths", firstN(problemList(ad.refused), 10))
		}
		if len(ad.dropped) > 0 {
			sort.Strings(ad.dropped)
			j.log.Warn("dropping setuid/setgid bits from the source (set preserve_suid = true in the job to keep them)", "source_version", version, "paths", firstN(ad.dropped, 10))
		}
	}
	j.refusedRemote = ad.refused
	j.publishProblems()
	return ad.want
}

// keepUnreadable adds to want what this node holds at and below the paths
// the source cannot read (and has never synced): a source that fails to
// read a file never makes a target delete its copy.
func (j *job) keepUnreadable(version uint64, paths []string, want index.Index) bool {
	if len(paths) == 0 {
		return false
	}
	set := make(map[string]bool, len(paths))
	for _, p := range paths {
		set[p] = true
	}
	var kept []string
	for p, st := range j.states.All() {
		if want.Has(p) || !underSet(p, set) {
			continue
		}
		if par := index.Parent(p); par != "" && !want.Has(par) && !underSet(par, set) {
			continue // its directory is not part of the generation
		}
		want.Set(st.Item)
		kept = append(kept, p)
	}
	if len(kept) > 0 && j.keptLogged != version {
		j.keptLogged = version
		sort.Strings(kept)
		j.log.Warn("keeping local files the source cannot read", "source_version", version, "paths", firstN(kept, 10))
	}
	return len(kept) > 0
}

// generationFor records the generation a target is about to apply. A
// retry of the newest generation, which failed for a reason that says
// nothing about its content (the apply failed, Asterisk was down), reuses
// its record: retries never push good generations out of keep.
func (j *job) generationFor(ctx context.Context, m *wire.Announce, want index.Index, changed, scope []string, onProgress func(written, total int)) (*store.Generation, error) {
	if g := j.retry; g != nil && g.SourceVersion == m.Version && j.retryDigest == j.digests.of(want) {
		if _, blacklisted := j.bad[j.digests.of(want).Hash().String()]; !blacklisted {
			if err := j.a.store.SetState(j.cfg.Name, g.Number, store.StateApplying, ""); err != nil {
				return nil, err
			}
			j.log.Info("retrying generation", "generation", g.Number, "last_failure", g.Reason)
			g.State, g.Reason = store.StateApplying, ""
			g.Index = want // the same content; its own table may since be the spare (see settleSpare)
			return g, nil
		}
	}
	j.retry = nil
	g := &store.Generation{Job: j.cfg.Name, Time: time.Now(), Origin: m.Origin, SourceVersion: m.Version,
		State: store.StateApplying, Reason: m.Reason, Index: want}
	var ch *changeSet
	if scope != nil && !j.drift.base.IsNil() {
		// the tree and want differ only at scope and the drift's paths,
		// want and the newest generation only at changed
		at := append(slices.Clone(scope), j.drift.list()...)
		g.Changed = Changed(j.statesAt(at), subIndex(want, at))
		if j.recorded == j.latest {
			ch = diffAt(IndexLookup(j.latest.Index), IndexLookup(want), changed)
			ch.full = func() index.Index { return want }
		}
	} else {
		g.Changed = Changed(j.states.Index(), want)
	}
	g.OnProgress = onProgress
	n, err := j.record(ctx, g, ch)
	if err != nil {
		return nil, err
	}
	g.Number = n
	return g, nil
}

// finish runs the actions and checks of an applied generation and marks it
// good, or rolls back to before and marks it bad.
// since, when set, is when the change was made at its origin: the
// change→applied latency is observed from it.
func (j *job) finish(ctx context.Context, g *store.Generation, before beforeApply, since time.Time) {
	changed, err := j.renderGeneration(ctx, g)
	if err != nil {
		if ctx.Err() != nil {
			j.log.Info("rendering interrupted by shutdown", "generation", g.Number)
			return
		}
		j.log.Warn("generation's templates do not render; rolling back", "generation", g.Number, "reason", err)
		j.rollbackFailed(ctx, g, before, renderFailed+err.Error(), core.RenderFailed)
		return
	}
	g.Changed = changed // its rollback runs the actions of the renderings too
	if err := j.a.after.AfterApply(ctx, &j.cfg, g.Number, changed); err != nil {
		if ctx.Err() != nil {
			// Shutting down mid-check is no verdict: the generation stays
			// "applying" and its checks run again at the next start.
			j.log.Info("checks interrupted by shutdown", "generation", g.Number)
			return
		}
		// An unreachable Asterisk says nothing about the content: roll
		// back, but let the source offer it again once Asterisk is up.
		unavailable := errors.Is(err, ErrAsteriskUnavailable)
		j.log.Warn("generation failed its checks; rolling back", "generation", g.Number, "reason", err, "asterisk_unavailable", unavailable)
		f := core.ChecksFailed
		if unavailable {
			f = core.AsteriskUnavailable
		}
		j.rollbackFailed(ctx, g, before, err.Error(), f)
		return
	}
	if err := j.a.store.SetState(j.cfg.Name, g.Number, store.StateGood, ""); err != nil {
		j.log.Error("cannot mark generation good", "generation", g.Number, "err", err)
	}
	g.State = store.StateGood
	j.latest, j.checksFailHere = g, false
	j.noteGeneration(len(g.Changed))
	if len(g.Changed) >= largeGeneration && !j.isSource {
		// its actions ran: what it changed is in its record, and a
		// target reads the list of its newest generation no more (an
		// initial sync's held 1.6 MB for the agent's lifetime)
		g.Changed = nil
	}
	j.setStatus(func(s *JobStatus) {
		s.Generation, s.State, s.LastError = g.Number, string(store.StateGood), ""
		s.LastChange = time.Now()
		s.Applied++
		if !since.IsZero() {
			if s.Latency == nil {
				s.Latency = newHistogram()
			}
			s.Latency.Observe(time.Since(since))
		}
	})
}

// checksFailHereHint ends the reason of a generation whose checks failed
// on the content put back too (core.ChecksFailHere).
const checksFailHereHint = "the checks fail on the content put back too: this node's check or Asterisk is at fault, not the generation; fix it, then run `pbxsync sync --now` here or reload the configuration"

// retryChecksFailHere asks the source for its newest generation when the
// last one failed this push target's checks on the content put back too
// (core.ChecksFailHere): the configuration was reloaded, and with it maybe
// the check the admin fixed.
func (j *job) retryChecksFailHere() {
	if !j.checksFailHere {
		return
	}
	j.log.Info("the configuration was reloaded: asking the source again for the generation this node's checks failed on", "source", j.cfg.Source)
	if err := j.sendUp(&wire.Result{Job: j.cfg.Name, State: wire.ResultResync}); err != nil {
		j.log.Warn("cannot ask the source for its newest generation", "source", j.cfg.Source, "err", err)
	}
}

// rollbackFailed restores the tree to before (byte-exact from the store),
// runs the actions of the restored items again and marks g bad. What
// else follows from failure f is core.Judge's: a blacklisted content is
// remembered as bad, so the same announcement is not applied again;
// otherwise a retry reuses g's record. g.State is then the answer to the
// source (see take).
func (j *job) rollbackFailed(ctx context.Context, g *store.Generation, before beforeApply, reason string, f core.Failure) {
	if before != nil {
		if err := j.restore(context.WithoutCancel(ctx), g.Number, before()); err != nil {
			j.log.Error("ROLLBACK FAILED: the tree may hold the bad generation", "generation", g.Number, "err", err)
			reason += "; rollback failed: " + err.Error()
		} else {
			if info, err := j.a.store.GenerationInfo(j.cfg.Name, g.Number); err != nil {
				j.log.Warn("cannot read which local symlinks the failed generation replaced", "generation", g.Number, "err", err)
			} else {
				j.putBackLinks(ctx, info.Links)
			}
			// the restored content's actions run again (Asterisk reloads
			// what the tree holds now) and its checks say whose fault it
			// was; before a first generation that is the tree as it was
			var restored uint64
			if j.latest != nil {
				restored = j.latest.Number
			}
			if err := j.a.after.AfterApply(ctx, &j.cfg, restored, g.Changed); err != nil {
				j.log.Error("the restored generation fails its checks too", "generation", restored, "err", err)
				if f == core.ChecksFailed && !errors.Is(err, ErrAsteriskUnavailable) && ctx.Err() == nil {
					// whatever the content: not this generation's fault
					f = core.ChecksFailHere
					reason += "; " + checksFailHereHint
				}
			}
		}
	}
	j.checksFailHere = f == core.ChecksFailHere
	judged := core.Judge(f)
	blacklist := judged.Blacklist
	if err := j.a.store.SetState(j.cfg.Name, g.Number, store.StateBad, reason); err != nil {
		j.log.Error("cannot mark generation bad", "generation", g.Number, "err", err)
	}
	j.resolveFailed() // marked bad first: Recover never rolls it forward
	g.State, g.Reason = store.StateBad, reason
	j.retry = nil
	if !blacklist {
		j.retry = g // its retry reuses the record
		j.retryDigest = j.digests.of(g.Index)
	}
	if blacklist {
		j.bad[j.digests.of(g.Index).Hash().String()] = reason
		j.dirty = true
		j.save()
	}
	if judged.Answer == core.StateApplying {
		g.State = store.StateApplying // answered as "not done yet"
	}
	state := string(store.StateBad)
	if f == core.ChecksFailHere {
		state = stateChecksFailing
	}
	j.setStatus(func(s *JobStatus) {
		s.RolledBack++
		s.State, s.LastError = state, fmt.Sprintf("generation %d: %s", g.Number, reason)
		if j.latest != nil {
			s.Generation = j.latest.Number
		}
	})
}

// toFetch returns the file items of want whose content the store lacks:
// those to fetch (each content once) and those whose content the tree
// holds at their path (see core.ToFetch).
func (j *job) toFetch(want index.Index) (need, fromTree []index.Item) {
	var base index.Index
	if j.latest != nil {
		base = j.latest.Index // its blobs are in the store
	}
	return core.ToFetch(j.missingContent(base, want), func(p string) (index.Hash, bool) {
		st, ok := j.states.Get(p)
		return st.Hash, ok
	})
}

// fetch gets need (see toFetch) from peer into the store, counting it in
// prog.
func (j *job) fetch(ctx context.Context, peer string, need []index.Item, prog *progressTracker) (err error) {
	if len(need) == 0 {
		return nil
	}
	if j.fed.onward != nil {
		// a relay: its site asks for this content as soon as the
		// announcement is handed on, maybe while it is still coming
		defer j.fed.fetchingForSite(need)(&err)
	}
	var needBytes int64
	for _, it := range need {
		needBytes += it.Size
	}
	prog.extend(wire.PhaseFetching, uint64(len(need)), uint64(needBytes))
	// the workers below look the paths up (fetchBatchBased, fetchOne): not in
	// a spilled scan state, a few preads each, when they are many
	j.states.ReadBack(len(need))
	batching := core.Batching{ItemMax: batchItemMax, Bytes: batchBytes, MaxItems: wire.MaxGetMore + 1}
	units := batching.Units(need, func(it index.Item) bool {
		// a signature goes on a stream of its own (fetchOne); a kept base
		// is named in a batch (fetchBatchBased)
		_, kind := j.baseHere(it)
		return kind == baseSigned
	})
	work := make(chan []index.Item)
	errs := make(chan error, len(need))
	var batchRefused atomic.Bool // the source does not know Get.More
	var wg sync.WaitGroup
	for w := 0; w < min(fetchParallel, len(units)); w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for u := range work {
				if len(u) > 1 && !batchRefused.Load() {
					done, err := j.fetchBatchBased(ctx, peer, u, prog)
					if done == 0 && err != nil {
						if !batchRefused.Swap(true) {
							j.log.Info("the source answers no batch of contents on one stream; fetching each on its own", "peer", peer, "err", err)
						}
					}
					u = u[done:] // what the batch did not bring: each on its own
				}
				for _, it := range u {
					err := j.fetchOne(ctx, peer, it)
					if err == nil {
						prog.add(it.Size)
					}
					errs <- err
				}
			}
		}()
	}
	for _, u := range units {
		work <- u
	}
	close(work)
	wg.Wait()
	close(errs)
	var all []error
	for err := range errs {
		if err != nil {
			all = append(all, err)
		}
	}
	return errors.Join(all...)
}

// Contents fetched together on one stream (Get.More): files of at most
// batchItemMax bytes that need no delta base, up to wire.MaxGetMore+1 of
// them or batchBytes in all.
const (
	batchItemMax = 256 << 10
	batchBytes   = 4 << 20
)

// fetchBatch gets the whole content of items on one stream (Get.More)
// into the store and counts each in prog. It returns how many of them, in
// order, it stored; the caller fetches the rest on their own. It looks
// nothing up in the scan state: the prefetcher calls it beside the job
// loop.
func (j *job) fetchBatch(ctx context.Context, peer string, items []index.Item, prog *progressTracker) (int, error) {
	return j.fetchBatchOf(ctx, peer, items, nil, prog)
}

// fetchBatchBased is fetchBatch for the fetch of an announcement, while
// the job loop waits for it: an item whose path holds a file here whose
// content the store holds is asked for as a delta against it (Get.Base,
// Get.MoreBase), MaxGetMoreBased+1 items a request then.
func (j *job) fetchBatchBased(ctx context.Context, peer string, items []index.Item, prog *progressTracker) (int, error) {
	bases := make([]index.Item, len(items)) // the base of items[i]; a zero Hash: none
	based := false
	for i, it := range items {
		if base, kind := j.baseHere(it); kind == baseKept {
			bases[i], based = base, true
		}
	}
	if !based {
		return j.fetchBatchOf(ctx, peer, items, nil, prog)
	}
	done := 0
	for done < len(items) {
		end := min(done+wire.MaxGetMoreBased+1, len(items))
		n, err := j.fetchBatchOf(ctx, peer, items[done:end], bases[done:end], prog)
		done += n
		if err != nil {
			return done, err
		}
	}
	return done, nil
}

// fetchBatchOf gets items on one stream, as fetchBatch does, each as a
// delta against bases[i] where bases is set and that has a Hash (see
// fetchBatchBased).
func (j *job) fetchBatchOf(ctx context.Context, peer string, items, bases []index.Item, prog *progressTracker) (int, error) {
	s, err := j.a.mon.OpenStream(ctx, peer)
	if err != nil {
		return 0, err
	}
	defer s.Abort()
	j.setStatus(func(st *JobStatus) { st.FetchStreams++ })
	var total int64
	first := items[0]
	get := &wire.Get{Job: j.cfg.Name, Path: first.Path, Hash: first.Hash[:], More: make([][]byte, len(items)-1)}
	for i, it := range items[1:] {
		get.More[i] = it.Hash[:]
		total += it.Size
	}
	if bases != nil {
		if !bases[0].Hash.IsZero() {
			get.Base = bases[0].Hash[:]
		}
		get.MoreBase = make([][]byte, len(items)-1)
		for i, b := range bases[1:] {
			if !b.Hash.IsZero() {
				get.MoreBase[i] = b.Hash[:]
			}
		}
	}
	s.SetDeadline(time.Now().Add(time.Minute + time.Duration(total/(1<<20))*time.Second))
	if err := s.WriteMessage(get); err != nil {
		return 0, fmt.Errorf("request %s and %d more: %w", first.Path, len(get.More), err)
	}
	s.Close()
	for i, it := range items {
		m, err := s.ReadMessage()
		if err != nil {
			return i, fmt.Errorf("fetch %s: %w", it.Path, err)
		}
		d, ok := m.(*wire.Data)
		if !ok {
			if e, isErr := m.(*wire.Error); isErr {
				return i, fmt.Errorf("fetch %s: source says: %s", it.Path, e.Message)
			}
			return i, fmt.Errorf("fetch %s: unexpected %s", it.Path, m.Type())
		}
		based := bases != nil && !bases[i].Hash.IsZero()
		if wire.HashOf(d.Hash) != it.Hash || d.Length != it.Size || (d.Encoding != wire.EncodingZstd && (d.Encoding != wire.EncodingDelta || !based)) {
			return i, fmt.Errorf("fetch %s: source sent other content (%s %s, %d bytes) than asked for", it.Path, d.Encoding, wire.HashOf(d.Hash).Short(), d.Length)
		}
		body := io.LimitReader(s, d.Size)
		if d.Encoding == wire.EncodingDelta {
			err = j.patchFrom(ctx, it, bases[i], body)
		} else {
			err = j.putFetched(ctx, body, it)
		}
		j.a.mon.AddTraffic(peer, remotemon.Traffic{LogicalReceived: uint64(it.Size), ContentReceived: uint64(d.Size)})
		j.setStatus(func(st *JobStatus) {
			st.Fetches++
			st.BytesReceived += uint64(d.Size)
			st.LogicalBytesReceived += uint64(it.Size)
		})
		if err != nil {
			return i, fmt.Errorf("fetch %s: %w", it.Path, err)
		}
		prog.add(it.Size)
	}
	return len(items), nil
}
