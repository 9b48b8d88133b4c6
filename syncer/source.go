package syncer

import (
	"context"
	"errors"
	"fmt"
	"io"
	"iter"
	"os"
	"slices"
	"sort"
	"time"

	"pbxsync/internal/beneath"
	"pbxsync/internal/config"
	"pbxsync/internal/index"
	"pbxsync/internal/store"
	"pbxsync/internal/wire"
	"pbxsync/remotemon"
	"pbxsync/syncer/core"
)

// startSource records the tree as a new generation when it differs from the
// newest one (changes made while the agent was down) and announces it.
func (j *job) startSource(ctx context.Context) error {
	gens, err := j.a.store.Generations(j.cfg.Name)
	if err != nil {
		return err
	}
	if len(gens) > 0 {
		g, err := j.a.store.Generation(j.cfg.Name, gens[len(gens)-1].Number)
		if err != nil {
			return err
		}
		j.latest, j.recorded = g, g
		j.window.base = g.Number // pending generations count from here until a target answers
		if n := len(gens); n > 1 {
			// the generation before: what a target one step behind holds,
			// so it gets deltas after a restart as before it; read from
			// the newest generation's change record, not as a whole index
			if p, err := j.prevFromStore(gens[n-2].Number); err == nil {
				j.prev = p
			} else {
				j.log.Warn("cannot read the generation before the newest; no delta base for it", "generation", gens[n-2].Number, "err", err)
			}
		}
		j.offer(g.Index, j.prev.items())
		j.keepLastKnown()
	}
	for _, t := range j.cfg.Targets {
		j.targets[t] = &targetState{}
	}
	switch {
	case j.latest == nil:
		j.spillLargeStates()
		if err := j.newSourceGeneration(ctx, j.states.Index(), ""); err != nil {
			return err
		}
	case !j.treeHolds(j.latest.Index):
		// changed while the agent was down: recorded from the paths
		// where the tree differs (treeHolds tracks them)
		if err := j.newSourceChange(ctx); err != nil {
			return err
		}
	}
	j.setStatus(func(s *JobStatus) { s.State = string(j.latest.State); s.Generation = j.latest.Number })
	j.announce(true)
	j.renderAll(ctx, j.latest.Index)
	return nil
}

// storeFile puts the file at rel into the store in one pass (read, hash
// and compress together): for content the store is known to lack, where
// Store.PutFile's first hashing pass would be wasted.
func (j *job) storeFile(ctx context.Context, rel string) (index.Hash, int64, error) {
	// never through a symlink: a file swapped for a link to a root-only
	// file after the scan must not be shipped to every target
	f, err := beneath.OpenFile(j.cfg.Path, rel, os.O_RDONLY)
	if err != nil {
		return index.Hash{}, 0, err
	}
	defer f.Close()
	return j.a.store.PutReader(ctx, f)
}

// storeTree puts into the store the files of local that the store lacks
// (of those whose content base, a recorded generation, does not hold at
// their path), a few at a time. A file that changed since the scan is
// stored as read, and its item in local updated; one removed since is
// removed from local: the watcher reports the change and the next
// generation carries it.
func (j *job) storeTree(ctx context.Context, local, base index.Index) error {
	started := time.Now()
	var need []string
	for _, it := range j.missingContent(base, local) {
		need = append(need, it.Path)
	}
	defer func() {
		j.log.Debug("stored the tree's new content", "files", len(need), "took", time.Since(started).Round(time.Millisecond))
	}()
	type stored struct {
		path string
		hash index.Hash
		size int64
		err  error
	}
	work := make(chan string)
	done := make(chan stored)
	for w := 0; w < min(stageParallel, len(need)); w++ {
		go func() {
			for p := range work {
				h, n, err := j.storeFile(ctx, p)
				done <- stored{p, h, n, err}
			}
		}()
	}
	go func() {
		for _, p := range need {
			work <- p
		}
		close(work)
	}()
	var first error
	for range need {
		r := <-done
		if errors.Is(r.err, os.ErrNotExist) {
			local.Delete(r.path) // removed since the scan; the watcher reports it
			continue
		}
		if r.err != nil {
			if first == nil {
				first = fmt.Errorf("store %s: %w", r.path, r.err)
			}
			continue
		}
		if it, ok := local.Get(r.path); ok && (it.Hash != r.hash || it.Size != r.size) {
			it.Hash, it.Size = r.hash, r.size
			local.Set(it)
		}
	}
	return first
}

// newSourceGeneration stores the content of local and records it as a
// new good generation of this origin: only what changed against the
// newest generation is looked up, stored and written (see record). It
// compares local with the newest generation in full unless the scan's
// drift is tracked against it; the hot path is newSourceChange.
func (j *job) newSourceGeneration(ctx context.Context, local index.Index, reason string) error {
	var prev, base index.Index
	if j.latest != nil {
		prev = j.latest.Index
	}
	// A first generation's content is in the store already: the scan
	// that read it stored it (its sink). The record checks every blob
	// anyway, in its own transaction, and refuses what it lacks
	// (store.ErrNotFound); storeTree's lookup of the same blobs before it
	// was 0.3 s of a 100k source's record, the targets waiting. What the
	// record finds missing (content the scan did not read) is stored then,
	// and the record made again.
	first := j.recorded == nil
	if !first {
		base = j.recorded.Index
		if err := j.storeTree(ctx, local, base); err != nil {
			return err
		}
	}
	g, err := j.recordSource(ctx, prev, local, reason)
	if first && errors.Is(err, store.ErrNotFound) {
		j.log.Debug("the store lacks content of the first generation; storing it", "err", err)
		if err := j.storeTree(ctx, local, base); err != nil {
			return err
		}
		g, err = j.recordSource(ctx, prev, local, reason)
	}
	if err != nil {
		return fmt.Errorf("record generation: %w", err)
	}
	var pg prevGen
	if j.latest != nil {
		pg = newPrevGen(j.latest.Number, prev, local, j.driftPaths(prev))
	}
	j.tookGeneration(g, pg)
	return nil
}

// recordSource records local, the scan state, as a new good generation of
// this origin after prev (nil: the first) and returns it.
func (j *job) recordSource(ctx context.Context, prev, local index.Index, reason string) (*store.Generation, error) {
	g := &store.Generation{Job: j.cfg.Name, Time: time.Now(), Origin: j.a.node, Changed: j.changedPaths(prev, local), State: store.StateGood, Reason: reason, Index: local}
	prog := j.startRecordProgress()
	defer prog.stop()
	g.OnProgress = prog.update
	n, err := j.record(ctx, g, nil)
	g.Number = n
	return g, err
}

// newSourceChange is newSourceGeneration for the scan state of now, which
// differs from the newest generation only at the scan's drift paths: it
// looks at those paths only, records the generation by its changes and
// then changes the newest index in place (the generation before is kept
// as what it held there, see prevGen). What it costs grows with the
// change, not with the job. The drift must be tracked against the newest
// generation, which must be the newest recorded.
func (j *job) newSourceChange(ctx context.Context) error {
	cur := j.latest.Index
	paths := j.drift.list()
	slices.Sort(paths)
	next := index.New(len(paths)) // the new items at paths
	for _, p := range paths {
		if st, ok := j.states.Get(p); ok {
			next.Set(st.Item)
		}
	}
	if err := j.storeTree(ctx, next, subIndex(cur, paths)); err != nil {
		return err
	}
	pg := newPrevGen(j.latest.Number, cur, next, paths)
	ch := &changeSet{}
	for _, p := range pg.paths {
		if it, ok := next.Get(p); ok {
			ch.set = append(ch.set, it)
		} else {
			ch.del = append(ch.del, p)
		}
	}
	g := &store.Generation{Job: j.cfg.Name, Time: time.Now(), Origin: j.a.node, State: store.StateGood, Index: cur,
		Changed: Changed(subIndex(cur, pg.paths), subIndex(next, pg.paths))}
	ch.full = func() index.Index { return applyChanges(cur.Clone(), ch) }
	n, err := j.record(ctx, g, ch)
	if err != nil {
		return fmt.Errorf("record generation: %w", err)
	}
	g.Number = n
	d := j.digests.of(cur)
	for _, p := range pg.paths {
		old := pg.at[p]
		it, has := next.Get(p)
		d.Replace(old.it, old.ok, it, has)
	}
	if g.Index.Same(cur) {
		applyChanges(cur, ch) // in place: the digest cache holds cur by identity
	}
	j.digests.put(g.Index, d)
	j.tookGeneration(g, pg)
	return nil
}

// tookGeneration makes g, just recorded, the source's newest generation
// and pg the one before it, and serves and reports it.
func (j *job) tookGeneration(g *store.Generation, pg prevGen) {
	j.latest = g
	j.drift.reset(g.Index, nil) // g is the scan state as recorded
	prevItems := pg.items()
	j.prev = pg
	j.announcements, j.announceItems = nil, nil
	j.offerChange(g.Index, func(p string) (index.Item, bool) {
		return prevItems.Get(p)
	}, pg.paths)
	j.noteGeneration(len(g.Changed))
	j.log.Info("new generation", "generation", g.Number, "changed", len(g.Changed))
	j.setStatus(func(s *JobStatus) {
		s.Generation, s.State, s.LastError = g.Number, string(store.StateGood), ""
		s.LastChange = g.Time
	})
}

// Inline content: changed files whose encoding (a delta against the
// previous generation, else the stored zstd frame) is at most inlineMaxItem
// ride inside the announcement, up to inlineBudget bytes in all; the rest
// is fetched over transfer streams.
//
// Deltas are encoded in the job loop while the announcement is built, for
// at most inlineDeltaTime per generation; a file whose delta was not tried
// by then is not inlined but fetched, and the source encodes its delta
// while serving the fetch, off the job loop and in parallel.
const (
	inlineMaxItem = 64 << 10
	inlineBudget  = 512 << 10
	// inlineReleaseEvery is how many blobs the inline part of an
	// announcement reads back between two drops of the database pages
	// they mapped (Store.ReleaseMapped), and after the last: a first
	// generation of small files fills the budget with ~850 lookups at
	// random places of the blob locations, which mapped ~10 MiB of
	// meta.db (each lookup faults in its pages and, by the kernel's
	// fault-around, up to 15 beside each) and kept it resident while the
	// announcement was encoded and sent: the source's peak RSS of a 100k
	// initial sync
	inlineReleaseEvery = 16
	inlineDeltaTime    = 100 * time.Millisecond
)

// useDelta applies the job's delta setting to content of size bytes:
// "auto" sends a delta for any file of config.DeltaMinSize or more, to
// every peer, near or far.
func (j *job) useDelta(size int64) bool {
	switch j.cfg.Delta {
	case config.DeltaNever:
		return false
	case config.DeltaAlways:
		return true
	}
	return size >= config.DeltaMinSize
}

// announceKind selects a variant of the announcement of one generation
// (core.Kind says which a target gets).
type announceKind struct {
	delta       bool // inline content as deltas against the previous generation, where useDelta says so
	incremental bool // only the changes against the previous generation
	same        bool // against the newest generation itself: "do you hold it?"
}

// announcementFor returns the announcement of kind k of the newest
// generation. Each variant is built once per generation.
func (j *job) announcementFor(ck core.Kind) *wire.Announce {
	k := announceKind{delta: ck.Delta, incremental: ck.Incremental, same: ck.Same}
	if msg, ok := j.announcements[k]; ok && msg.Version == j.latest.Number {
		if u := j.unreadableUnknown(); !slices.Equal(u, msg.Unreadable) {
			cp := *msg // a sent message is never changed
			cp.Unreadable = u
			j.announcements[k] = &cp
			if items, ok := j.announceItems[msg]; ok {
				delete(j.announceItems, msg)
				j.announceItems[&cp] = items
			}
			return &cp
		}
		return msg
	}
	if j.announcements == nil {
		j.announcements = map[announceKind]*wire.Announce{}
	}
	if old, ok := j.announcements[k]; ok {
		delete(j.announceItems, old) // of an older generation
	}
	var msg *wire.Announce
	switch {
	case k.same:
		g := j.latest
		d := j.digests.of(g.Index).Hash()
		msg = &wire.Announce{Job: j.cfg.Name, Version: g.Number, Origin: g.Origin, Reason: g.Reason, Time: g.Time.UnixNano(),
			Base: g.Number, Items: []wire.Item{}, Digest: d[:]}
	default:
		msg = j.buildAnnounce(context.Background(), k.delta)
	}
	switch {
	case k.same:
	case k.incremental:
		msg.Items, msg.Removed, msg.Digest = j.incremental()
		msg.Base = j.prev.number
	default:
		if j.announceItems == nil {
			j.announceItems = map[*wire.Announce]iter.Seq[wire.Item]{}
		}
		j.announceItems[msg] = wire.IndexItems(j.latest.Index)
	}
	msg.Unreadable = j.unreadableUnknown()
	j.announcements[k] = msg
	return msg
}

// buildAnnounce makes the announcement of the newest generation (without
// its items, which the caller sets) and carries its changed files inline:
// as deltas against the previous generation (which a target in step
// holds) when withDelta is set and useDelta says so for the file's size,
// else as the stored zstd frames.
func (j *job) buildAnnounce(ctx context.Context, withDelta bool) *wire.Announce {
	g := j.latest
	msg := &wire.Announce{Job: j.cfg.Name, Version: g.Number, Origin: g.Origin, Reason: g.Reason, Time: g.Time.UnixNano()}
	budget := inlineBudget
	if j.a.noInline {
		budget = 0
	}
	deltaUntil := time.Now().Add(inlineDeltaTime)
	opened := 0 // blobs read back for the inline part
	defer func() {
		if opened >= inlineReleaseEvery {
			_ = j.a.store.ReleaseMapped()
		}
	}()
	for _, p := range g.Changed {
		it, ok := g.Index.Get(p)
		if !ok || it.Kind != index.KindFile {
			continue
		}
		if budget <= 0 {
			break // the rest is fetched: encode no more deltas for it
		}
		var in *wire.Inline
		if old, ok := j.prev.lookup(g.Index, p); withDelta && ok && old.Kind == index.KindFile && old.Hash != it.Hash && j.useDelta(it.Size) && j.a.store.Has(old.Hash) {
			if time.Now().After(deltaUntil) || it.Size-old.Size > 4*inlineMaxItem {
				// fetched with its base named: a delta all the same, encoded
				// off the job loop (a file that grew by that much has no
				// delta small enough to ride inline)
				continue
			}
			if d, _, err := j.encodeDelta(ctx, old.Hash, old.Size, it.Hash, it.Size); err == nil && d != nil && d.Len() <= inlineMaxItem {
				in = &wire.Inline{Hash: it.Hash[:], Base: old.Hash[:], Encoding: wire.EncodingDelta, Data: d.Bytes()}
			}
		}
		full := false // the file would ride inline, but not in what is left
		if in == nil {
			if opened++; opened%inlineReleaseEvery == 0 {
				_ = j.a.store.ReleaseMapped()
			}
			if rc, n, err := j.a.store.OpenCompressed(it.Hash); err == nil {
				switch {
				case n > inlineMaxItem: // never inline: fetched
				case int(n) > budget:
					full = true
				default:
					if data, err := io.ReadAll(io.LimitReader(rc, n)); err == nil {
						in = &wire.Inline{Hash: it.Hash[:], Encoding: wire.EncodingZstd, Data: data}
					}
				}
				rc.Close()
			}
		}
		if full || in != nil && len(in.Data) > budget {
			// The first file that would ride inline but does not fit in
			// what is left of the budget ends the inline part: the rest is
			// fetched. Trying every later file for the last bytes of the
			// budget read back every blob of a first generation (100,000
			// lookups and reads, 0.4-0.55 s of the source's CPU on the job
			// loop before the announcement went out) to inline a few more.
			break
		}
		if in == nil {
			continue
		}
		budget -= len(in.Data)
		msg.Inline = append(msg.Inline, *in)
	}
	return msg
}

// sourcePolicy is the job's push policy as a source (core.Source).
func (j *job) sourcePolicy() core.Source {
	order := core.OrderParallel
	if j.cfg.Order == config.OrderRolling {
		order = core.OrderRolling
	}
	return core.Source{Order: order, Repeat: int64(announceRepeat), Fresh: int64(progressFresh), NoDelta: j.cfg.Delta == config.DeltaNever}
}

// announceRepeat is how long a source waits for a target's answer before
// it repeats an announcement.
const announceRepeat = 3 * time.Second

// targetViews is what the source knows of its targets, in the job's order.
func (j *job) targetViews() []core.Target {
	out := make([]core.Target, 0, len(j.cfg.Targets))
	for _, name := range j.cfg.Targets {
		if t := j.targets[name]; t != nil {
			out = append(out, t.view(name))
		}
	}
	return out
}

// announce sends the newest generation to the targets that lack it, as
// core.Source.Round decides (all at once for order = "parallel", the
// first unfinished one for "rolling"; for "rolling-sites" all of the open
// waves, rollingsites.go). Unanswered announcements are repeated every
// few seconds; force repeats them now. Targets of another site are sent
// through that site's relay (sendRouted).
func (j *job) announce(force bool) {
	if j.latest == nil {
		return
	}
	v := j.latest.Number
	if !j.windowAllows(v, j.heldByTargets()) {
		return // outside the job's sync windows
	}
	j.planRoutes()
	defer j.flushRelayed()
	targets := j.targetViews()
	if j.cfg.Order == config.OrderRollingSites {
		// one wave at a time; inside the open waves all at once
		open := j.rollingSitesOpen(v)
		targets = slices.DeleteFunc(targets, func(t core.Target) bool { return !open[t.Name] })
	}
	r := j.sourcePolicy().Round(core.Round{Time: time.Now().UnixNano(), Latest: v, Prev: j.prev.number, Force: force,
		Targets: targets, Health: j.asteriskDown})
	for _, name := range r.Waiting {
		// its Asterisk is down: the generation is queued until it is back
		reason := "waiting until its Asterisk is up"
		if _, why := j.asteriskDown(name); why != "" {
			reason += ": " + why
		}
		sent := j.targets[name].version
		j.setStatus(func(s *JobStatus) {
			s.setTarget(name, &wire.Result{Job: j.cfg.Name, Version: sent, State: "waiting", Reason: reason})
		})
	}
	if len(r.Send) > 0 && !j.wake() {
		return
	}
	for _, a := range r.Send {
		j.sendTo(a.To, j.announcementFor(a.Kind))
	}
}

// asteriskDown reports whether the Asterisk of peer is down, and why.
func (j *job) asteriskDown(peer string) (bool, string) {
	if st := j.a.mon.PeerState(peer); st != nil && st.Asterisk == "down" {
		return true, st.AsteriskError
	}
	return false, ""
}

// sendTo sends target name an announcement on its route (sendRouted:
// directly, or through its site's relay) when it can be reached, and
// records that it went out.
func (j *job) sendTo(name string, msg *wire.Announce) {
	reached, err := j.sendRouted(name, msg)
	if !reached {
		return
	}
	if err != nil {
		j.log.Debug("announce failed", "peer", name, "err", err)
		return
	}
	j.stepTarget(name, core.Sent{Version: msg.Version, Same: msg.Base == msg.Version, Time: time.Now().UnixNano()}, nil)
}

// sendToTarget is the one place a push source (files or postgres) sends
// a message to one of its targets.
func (j *job) sendToTarget(name string, m wire.Message) error {
	return j.a.mon.Send(name, m)
}

// stepTarget steps what happened to target name (core.Target.Step); r is
// the answer of a core.Answered.
func (j *job) stepTarget(name string, e core.TargetEvent, r *wire.Result) core.Outcome {
	t := j.targets[name]
	n, out := t.view(name).Step(e)
	t.take(n, r)
	return out
}

// onResult records a target's answer and moves a rolling rollout on.
func (j *job) onResult(peer string, r *wire.Result) {
	if _, ok := j.targets[peer]; !j.isSource || !ok {
		j.log.Warn("ignoring a result from a peer that is not a target of this job", "peer", peer)
		return
	}
	out := j.stepTarget(peer, core.Answered{Answer: answerOf(r), Latest: j.latestNumber(), Time: time.Now().UnixNano()}, r)
	j.dropCompleteAnnouncements()
	if out.Rejected {
		reason := fmt.Sprintf("target %s rejected generation %d: %s", peer, r.Version, r.Reason)
		j.log.Warn("target rejected a generation and rolled back", "peer", peer, "generation", r.Version, "reason", r.Reason)
		if j.latest != nil && r.Version == j.latest.Number {
			if err := j.a.store.SetState(j.cfg.Name, r.Version, store.StateBad, reason); err != nil {
				j.log.Warn("cannot mark generation bad", "err", err)
			}
			j.latest.State = store.StateBad
		}
		j.setStatus(func(s *JobStatus) { s.State = string(store.StateBad); s.LastError = reason })
	} else if r.State == "good" && j.latest != nil && r.Version == j.latest.Number {
		j.log.Debug("target applied generation", "peer", peer, "generation", r.Version)
	}
	if out.Record {
		j.setStatus(func(s *JobStatus) { s.setTarget(peer, r) })
	}
	if out.Again {
		j.announce(false)
	}
}

// answerOf is a target's Result as the push policy reads it.
func answerOf(r *wire.Result) core.Answer {
	return core.Answer{Version: r.Version, State: r.State, Progress: r.Progress != nil}
}

// dropCompleteAnnouncements lets go of the complete announcements of the
// newest generation (every item of the job) once every target holds it:
// a later one, for a target that restarts or asks for it, is built again.
// The changed list of a large generation goes too.
func (j *job) dropCompleteAnnouncements() {
	if len(j.targetViews()) != len(j.cfg.Targets) || !core.AllHold(j.targetViews(), j.latestNumber()) {
		return
	}
	for k, msg := range j.announcements {
		if !k.incremental {
			if _, ok := j.announceItems[msg]; ok {
				j.noteGeneration(j.latest.Index.Len())
				delete(j.announceItems, msg)
			}
			delete(j.announcements, k)
		}
	}
	if j.latest != nil && len(j.latest.Changed) >= largeGeneration {
		// an initial sync's list of every path (1.9 MB at 100,000
		// files): only an announcement built again reads it, to carry
		// changed files inline, and one for a target that holds the
		// generation already carries none it needs (it is in the
		// generation's record)
		j.latest.Changed = nil
	}
}

// unreadableUnknown lists the paths the source cannot read and that its
// newest generation does not hold: a target must keep what it has there.
func (j *job) unreadableUnknown() []string {
	var out []string
	for p := range j.unreadable {
		if !j.latest.Index.Has(p) {
			out = append(out, p)
		}
	}
	sort.Strings(out)
	return out
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func (j *job) latestNumber() uint64 {
	if j.latest == nil {
		return 0
	}
	return j.latest.Number
}

// countInline adds the content carried inside an announcement to the
// job's and the peer's sent counters.
func (j *job) countInline(peer string, msg *wire.Announce) {
	if len(msg.Inline) == 0 {
		return
	}
	var wireBytes, logical uint64
	for _, in := range msg.Inline {
		wireBytes += uint64(len(in.Data))
		if it, ok := j.changedByHash(wire.HashOf(in.Hash)); ok {
			logical += uint64(it.Size)
		}
	}
	j.a.mon.AddTraffic(peer, remotemon.Traffic{LogicalSent: logical, ContentSent: wireBytes})
	j.setStatus(func(s *JobStatus) {
		s.BytesSent += wireBytes
		s.LogicalBytesSent += logical
	})
}
