package syncer

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path"
	"sort"
	"strings"
	"time"

	"pbxsync/internal/config"
	"pbxsync/internal/index"
	"pbxsync/internal/store"
	"pbxsync/internal/wire"
	"pbxsync/syncer/core"
)

// meshState is what a mesh job keeps beside the job: the pure machine
// (syncer/core) that decides, and the names of the members' IDs. The loop
// in this file is the only place that carries out its Ready: the scan,
// the store, the transfers, the applier and the checks are the push job's
// edges, reused.
type meshState struct {
	m     *core.Machine
	ids   map[string]string // member name -> node ID (vectors count by ID)
	names map[string]string // node ID -> member name
	// rejection is why this member's checks last refused a member's
	// versions and which paths it reverted ("" when its newest change is
	// not such a revert): it rides in the Reason of its announcements, so
	// every member's status and history name the rejecting member.
	rejection string
	// reverts is, per member, the paths its last announcement says it
	// reverted after its checks refused them: taking such a revert keeps
	// this member's version as a conflict record.
	reverts map[string]map[string]bool
	reasons map[string]string // member -> the rejection its announcements carry
	// down is set while this node's checks fail on the content they had
	// before a member's version too (meshchecks.go).
	down *checksDown
	// downTries is how often the checks failed before they last passed
	// again (a check that fails again waits on from there); 0 once a
	// member's versions were taken.
	downTries int
	edge      meshEdge
	relay     meshRelay // sites and relays (relay_mesh.go)
}

// revertsMark is what a member's announcement Reason says before the
// paths it reverted.
const revertsMark = "; reverted: "

// noteReverts keeps what peer's announcement says it reverted (nothing
// when its Reason is not a rejection).
func (ms *meshState) noteReverts(peer, reason string) {
	delete(ms.reverts, peer)
	delete(ms.reasons, peer)
	i := strings.Index(reason, revertsMark)
	if !strings.HasPrefix(reason, "rejected by ") || i < 0 {
		return
	}
	set := map[string]bool{}
	for _, p := range strings.Split(reason[i+len(revertsMark):], ", ") {
		set[p] = true
	}
	ms.reverts[peer], ms.reasons[peer] = set, reason
}

// meshPersisted is a mesh job's state in the store (JobState): the mesh
// index, tombstones included, each item as the store encodes items.
type meshPersisted struct {
	Mesh     map[string][]byte            `json:"mesh"`               // path -> item
	Rejected map[string]map[string]string `json:"rejected,omitempty"` // path -> hash -> reason
}

// newMeshState maps the job's members to node IDs from the config.
func (j *job) newMeshState() (*meshState, error) {
	cfg := j.a.cfgSnapshot()
	ms := &meshState{ids: map[string]string{}, names: map[string]string{}, reverts: map[string]map[string]bool{}, reasons: map[string]string{}}
	for _, name := range j.cfg.Targets {
		var id string
		if name == j.a.node {
			id = j.a.ident.ID.String()
		} else if p, ok := cfg.PeerByName(name); ok {
			id = p.ID.String()
		} else {
			return nil, fmt.Errorf("job %q: mesh member %q is not a [[peer]]", j.cfg.Name, name)
		}
		ms.ids[name], ms.names[id] = id, name
	}
	return ms, nil
}

// memberName is the name of node ID id, or a short form of the ID when no
// member has it (a member since removed from the config).
func (ms *meshState) memberName(id string) string {
	if n, ok := ms.names[id]; ok {
		return n
	}
	if len(id) > 12 {
		return id[:12]
	}
	return id
}

// startMesh makes the job's mesh state: the members' IDs, the conflict
// policy and the machine over the saved mesh index; others are the other
// members' names.
func (j *job) startMesh(edge meshEdge) (*meshState, []string, error) {
	ms, err := j.newMeshState()
	if err != nil {
		return nil, nil, err
	}
	kind, preferName, err := core.ParsePolicy(j.cfg.Conflict)
	if err != nil {
		return nil, nil, fmt.Errorf("job %q: conflict: %w", j.cfg.Name, err)
	}
	policy := core.Policy{Kind: kind, Node: ms.ids[preferName]}
	var p meshPersisted
	if _, err := j.a.store.JobState(j.cfg.Name, &p); err != nil {
		j.log.Warn("cannot read the saved mesh index; starting from the data", "err", err)
	}
	var items []index.Item
	for path, b := range p.Mesh {
		it, err := store.UnmarshalItem(path, b)
		if err != nil {
			return nil, nil, fmt.Errorf("job %q: saved mesh index: %w", j.cfg.Name, err)
		}
		items = append(items, it)
	}
	var others []string
	for _, n := range j.cfg.Targets {
		if n != j.a.node {
			others = append(others, n)
		}
	}
	ms.m = core.New(core.Config{Self: ms.ids[j.a.node], Members: others, Policy: policy}, items)
	ms.edge = edge
	j.mesh = ms
	j.countConflicts()
	return ms, others, nil
}

// runMesh is the loop of a mesh files job.
func (j *job) runMesh(ctx context.Context) error {
	if err := j.openApplier(ctx); err != nil {
		return err
	}
	root := j.cfg.Path
	ms, others, err := j.startMesh(filesEdge{j})
	if err != nil {
		return err
	}
	if j.states, err = j.loadScan(); err != nil {
		j.log.Warn("cannot read saved scan state; rescanning everything", "err", err)
		j.states = nil
	}
	w, watchErr, stopWatch, err := j.watchAndScan(ctx, root)
	if err != nil {
		return err
	}
	defer stopWatch()
	j.log.Debug("tree scanned; a change from now on is seen", "root", root) // TestMeshChaos waits for it
	if g, ok, err := j.a.store.Latest(j.cfg.Name, store.StateGood); err == nil && ok {
		j.latest = g
	}
	j.setStatus(func(s *JobStatus) {
		s.Role, s.State = "member", "good"
		if j.latest != nil {
			s.Generation = j.latest.Number
		}
	})
	j.meshLocal(ctx)
	j.carryMesh(ctx, ms.m.Step(core.PeersUp{Peers: j.connectedOf(others)}))
	defer func() {
		if err := j.saveScan(); err != nil {
			j.log.Warn("cannot save scan state", "err", err)
		}
	}()
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case ch, ok := <-w.Changes():
			if !ok {
				if ctx.Err() != nil {
					return ctx.Err()
				}
				return fmt.Errorf("watching %s stopped: %v", root, <-watchErr)
			}
			if ch.Rescan {
				err = j.scanAll(ctx)
			} else {
				err = j.scanPaths(ctx, ch.Paths)
			}
			if err != nil {
				j.log.Warn("rescan failed", "err", err)
				continue
			}
			j.meshLocal(ctx)
		case e := <-j.inbox:
			j.onMeshEvent(ctx, e)
		case <-tick.C:
			j.retryUnreadable(ctx)
			j.meshRetryChecks(ctx, false)
			j.carryMesh(ctx, ms.m.Step(core.Tick{Time: time.Now().UnixNano()}))
			if j.dirty {
				if err := j.saveScan(); err == nil {
					j.dirty = false
				}
			}
		}
	}
}

func (j *job) onMeshEvent(ctx context.Context, e event) {
	ms := j.mesh
	switch {
	case e.rollback != nil:
		e.rollback.reply <- rollbackResult{err: fmt.Errorf("job %q is a mesh job: roll back by editing the files on any member (the losing versions are in `pbxsync conflicts`)", j.cfg.Name)}
	case e.syncNow != nil:
		j.meshRetryChecks(ctx, true)
		err := j.scanAll(ctx)
		if err == nil {
			j.meshLocal(ctx)
			j.carryMesh(ctx, ms.m.Step(core.PeersUp{Peers: j.connectedOf(j.cfg.Targets)}))
		}
		e.syncNow <- err
	case e.peerChange:
		j.meshPeerChange(ctx, e)
	case e.do != nil:
		e.do(ctx)
	case e.msg != nil:
		j.onMeshMessage(ctx, e.peer, e.msg, func(peer string, m *wire.Announce) {
			// what the tree holds now first: an edit not reported yet is a
			// version of its own, decided against the peer's
			if err := j.scanPaths(ctx, meshPaths(m.Items)); err != nil {
				j.log.Warn("rescan before taking a member's index failed", "err", err)
				return
			}
			j.meshLocal(ctx)
			ms.noteReverts(peer, m.Reason)
			j.meshRemote(ctx, peer, j.meshAdmit(peer, m))
		})
	}
}

// meshPeerChange tells the machine that a member came up or went down
// (and, when it was a relay, sends the index through the next one).
func (j *job) meshPeerChange(ctx context.Context, e event) {
	j.markPeerDown(e)
	if e.peerUp {
		j.carryMesh(ctx, j.mesh.m.Step(core.PeerUp{Peer: e.peer}))
		return
	}
	j.carryMesh(ctx, j.mesh.m.Step(core.PeerDown{Peer: e.peer}))
	j.meshRelayDown(ctx, e.peer)
}

// connectedOf returns the peers among names (this node left out) that
// are connected now.
func (j *job) connectedOf(names []string) []string {
	var out []string
	for _, n := range names {
		if n != j.a.node && j.a.mon.Connected(n) {
			out = append(out, n)
		}
	}
	return out
}

// meshPaths returns the paths of items.
func meshPaths(items []wire.Item) []string {
	out := make([]string, 0, len(items))
	for _, it := range items {
		out = append(out, it.Path)
	}
	return out
}

// meshAdmit converts a member's index to items, keeping only what this
// node's own filters admit (admit.go).
func (j *job) meshAdmit(peer string, m *wire.Announce) []index.Item {
	x := index.New(len(m.Items))
	for _, w := range m.Items {
		it := wire.ToItem(w)
		if it.Kind != index.KindFile {
			continue // directories are made as the parents of files
		}
		x.Set(it)
	}
	ad := admit(x, j.filter, j.cfg.PreserveSUID)
	if len(ad.refused) > 0 {
		j.log.Debug("refusing paths of a member's index", "peer", peer, "refused", len(ad.refused))
	}
	out := make([]index.Item, 0, ad.want.Len())
	for it := range ad.want.Items() {
		out = append(out, it)
	}
	return out
}

// meshLocal hands the machine the tree as scanned.
func (j *job) meshLocal(ctx context.Context) {
	tree := index.New(0)
	for _, st := range j.states.All() {
		if st.Kind == index.KindFile {
			tree.Set(st.Item)
		}
	}
	// what the job cannot read keeps its entry: unreadable is no delete
	for _, it := range j.mesh.m.Items() {
		if !tree.Has(it.Path) && !it.Deleted && underProblem(it.Path, j.unreadable) {
			tree.Set(it)
		}
	}
	j.carryMesh(ctx, j.mesh.m.Step(core.LocalScan{Time: time.Now().UnixNano(), Tree: tree}))
}

// underProblem reports whether p or one of its parents is in set.
func underProblem(p string, set map[string]string) bool {
	for q := p; q != "." && q != ""; q = path.Dir(q) {
		if _, ok := set[q]; ok {
			return true
		}
		if !strings.Contains(q, "/") {
			break
		}
	}
	return false
}

// carryMesh does what a Ready asks, in its order: store, record, persist,
// apply (then steps the outcome), send.
func (j *job) carryMesh(ctx context.Context, r core.Ready) {
	ms := j.mesh
	if r.Empty() {
		return
	}
	var changed []string
	for _, it := range r.Store {
		j.log.Debug("local version", "path", it.Path, "hash", it.Hash, "version", it.Version) // the hash is formatted only when logged
		ms.edge.storeLocal(ctx, it)
		changed = append(changed, it.Path)
	}
	for _, it := range r.Persist {
		if it.Deleted && !containsPath(changed, it.Path) {
			changed = append(changed, it.Path)
		}
	}
	if len(changed) > 0 && r.Apply == nil && len(r.Records) == 0 {
		ms.edge.record(ctx, changed, "")
	}
	if len(r.Persist) > 0 {
		j.saveMesh()
		j.offerMesh()
	}
	if len(r.Records) > 0 {
		var paths []string
		gen := uint64(0)
		if j.latest != nil {
			gen = j.latest.Number
		}
		for _, c := range r.Records {
			paths = append(paths, c.Path)
			c.Reason = fmt.Sprintf("rejected by %s: %s", j.a.node, c.Reason)
			if err := j.putMeshConflict(c, gen); err != nil {
				j.log.Error("cannot record a rejected version", "path", c.Path, "err", err)
			}
		}
		ms.rejection = fmt.Sprintf("rejected by %s: %s"+revertsMark+"%s", j.a.node, ms.m.LastFailure(), strings.Join(paths, ", "))
		ms.edge.record(ctx, paths, ms.rejection)
	} else if len(r.Store) > 0 {
		ms.rejection = ""
	}
	if a := r.Apply; a != nil {
		var ev core.Event = core.Applied{ID: a.ID}
		if err := ms.edge.apply(ctx, a); err != nil {
			var rej *meshRejection
			var here *checksFailHere
			switch {
			case errors.As(err, &rej):
				ev = core.Rejected{ID: a.ID, Reason: rej.reason}
			case errors.As(err, &here):
				// this node's fault, not the versions': not taken, and
				// no version of this node's own (the status says why)
				ev = core.Applied{ID: a.ID, Err: err.Error()}
			default:
				ev = core.Applied{ID: a.ID, Err: err.Error()}
				level := slog.LevelWarn
				if errors.Is(err, ErrAsteriskUnavailable) {
					// repeated at every index the member sends while
					// Asterisk is down; asteriskctl warns of that itself
					level = slog.LevelInfo
				}
				j.log.Log(ctx, level, "cannot take a member's versions", "peer", a.Peer, "err", err)
				j.setStatus(func(s *JobStatus) { s.LastError = fmt.Sprintf("from %s: %s", a.Peer, err) })
			}
		} else {
			ms.downTries = 0
		}
		j.carryMesh(ctx, ms.m.Step(ev))
	}
	for len(r.Send) > 0 {
		// the machine sends one index to every member due it: encoded
		// once, and once per remote site (sendMesh)
		first := r.Send[0].Items
		var to []string
		var rest []core.Message
		for _, msg := range r.Send {
			if sameSlice(msg.Items, first) {
				to = append(to, msg.To)
			} else {
				rest = append(rest, msg)
			}
		}
		j.sendMesh(j.meshAnnouncement(first), to)
		r.Send = rest
	}
}

// meshAnnouncement is this member's index items as sent to the members.
func (j *job) meshAnnouncement(items []index.Item) *wire.Announce {
	out := &wire.Announce{Job: j.cfg.Name, Version: 1, Origin: j.a.node, Reason: truncateText(j.mesh.rejection, wire.MaxReasonLen), Time: time.Now().UnixNano(), Items: make([]wire.Item, 0, len(items))}
	if j.latest != nil {
		out.Version = j.latest.Number
	}
	for _, it := range items {
		out.Items = append(out.Items, wire.FromItem(it))
	}
	return out
}

// sameSlice reports whether a and b are the same slice.
func sameSlice(a, b []index.Item) bool {
	return len(a) == len(b) && (len(a) == 0 || &a[0] == &b[0])
}

func containsPath(list []string, p string) bool {
	for _, x := range list {
		if x == p {
			return true
		}
	}
	return false
}

// meshEdge is what a mesh job's loop does to its data: files (this file)
// and postgres (pgmesh.go) are its two implementations.
type meshEdge interface {
	// storeLocal keeps the content of a local version in the store.
	storeLocal(ctx context.Context, it index.Item)
	// record notes local versions at paths as a generation (reason: why,
	// e.g. a revert after a rejection).
	record(ctx context.Context, paths []string, reason string)
	// apply carries out an Apply: fetch, keep losers, change the data,
	// run actions and checks, write the records. A *meshRejection means
	// the checks refused it and it was rolled back.
	apply(ctx context.Context, a *core.Apply) error
}

// filesEdge is the meshEdge of a files job.
type filesEdge struct{ j *job }

func (e filesEdge) storeLocal(ctx context.Context, it index.Item) {
	h, _, err := e.j.storeFile(ctx, it.Path)
	switch {
	case err != nil:
		e.j.log.Warn("cannot store a local change", "path", it.Path, "err", err)
	case h != it.Hash:
		e.j.log.Debug("file changed again while it was stored", "path", it.Path)
	}
}

func (e filesEdge) record(ctx context.Context, paths []string, reason string) {
	e.j.recordMeshGeneration(ctx, e.j.a.node, paths, reason)
}

func (e filesEdge) apply(ctx context.Context, a *core.Apply) error { return e.j.meshApply(ctx, a) }

// meshApply carries out a: fetches what the store lacks, keeps the losing
// contents, writes the conflict records and makes the tree hold a.Items
// (meshApplyTree). The records are durable before the tree changes: a
// crash in between never leaves a loser that is neither live nor recorded.
func (j *job) meshApply(ctx context.Context, a *core.Apply) error {
	for _, it := range append(append([]index.Item(nil), a.Items...), a.Keep...) {
		if it.Deleted || j.a.store.Has(it.Hash) {
			continue
		}
		if err := j.meshFetch(ctx, a.Peer, it); err != nil {
			return err
		}
	}
	before := j.states.Index()
	for _, c := range a.Records {
		if err := j.keepLoser(ctx, c, before); err != nil {
			return err
		}
	}
	_, err := j.meshApplyTree(ctx, a, before, func(gen uint64) error {
		for _, c := range a.Records {
			if err := j.putMeshConflict(c, gen); err != nil {
				return err
			}
		}
		return j.keepReverted(ctx, a, before, gen)
	})
	return err
}

// meshApplyTree makes the tree hold a.Items as one generation (calling
// beforeTree with its number first), returns
// its number (the newest good one when the tree needs no change) and runs
// the job's actions and checks; a failed check rolls the tree back and
// the versions are remembered as rejected here.
func (j *job) meshApplyTree(ctx context.Context, a *core.Apply, before index.Index, beforeTree func(gen uint64) error) (uint64, error) {
	var latest uint64
	if j.latest != nil {
		latest = j.latest.Number
	}
	want := before.Clone()
	var paths []string
	now := time.Now().UnixNano()
	for _, it := range a.Items {
		paths = append(paths, it.Path)
		if it.Deleted {
			if cur, ok := want.Get(it.Path); ok && cur.Kind == index.KindFile {
				want.Delete(it.Path)
			}
			continue
		}
		it.Version = nil
		want.Set(it)
		for d := path.Dir(it.Path); d != "." && d != "/"; d = path.Dir(d) {
			if cur, ok := want.Get(d); ok && cur.Kind == index.KindDir {
				break
			}
			want.Set(index.Item{Path: d, Kind: index.KindDir, Mode: 0o755, MTime: now})
			paths = append(paths, d)
		}
	}
	ops := PlanPaths(IndexLookup(before), IndexLookup(want), paths)
	if len(ops) == 0 {
		return latest, beforeTree(latest)
	}
	if err := j.meshHeld(a.Peer); err != nil {
		return 0, err // this node's checks fail whatever the content
	}
	if err := j.asteriskUnreachable(opPaths(ops)); err != nil {
		// it could only be rolled back: nothing recorded, nothing written;
		// taken at the member's next index once Asterisk answers
		return 0, fmt.Errorf("not taken now (%w)", err)
	}
	// the fetch and the staging took time: a file edited meanwhile is a
	// local version the decision did not see; it is scanned and decided
	// first. The check runs as late as it can: once the apply's files are
	// staged, just before its journal.
	// A local edit after that check and before the rename would be
	// renamed over: the paths are stamped before the rescan and checked
	// again after the journal, and at each rename (pathGuard, guardRun).
	guard := &pathGuard{root: j.cfg.Path}
	unchanged := func([]Op) error {
		if err := guard.stamp(opPaths(ops)); err != nil {
			return err
		}
		if err := j.scanPaths(ctx, opPaths(ops)); err != nil {
			return fmt.Errorf("rescan before the apply: %w", err)
		}
		for _, p := range opPaths(ops) {
			was, had := before.Get(p)
			now, has := j.stateLookup(p)
			if had != has || had && (was.Kind != now.Kind || was.Hash != now.Hash || was.Mode != now.Mode) {
				return fmt.Errorf("%s changed here while the member's version was fetched; deciding again", p)
			}
		}
		j.log.Debug("no local change in the way of a member's versions", "peer", a.Peer, "paths", opPaths(ops))
		return nil
	}
	if err := unchanged(ops); err != nil {
		return 0, err
	}
	j.applier.BeforeJournal = unchanged
	j.applier.guard = guard
	defer func() { j.applier.BeforeJournal, j.applier.guard = nil, nil }()
	g := &store.Generation{Job: j.cfg.Name, Time: time.Now(), Origin: a.Peer, Changed: opPaths(ops), State: store.StateApplying, Reason: j.mesh.reasons[a.Peer], Index: want}
	n, err := j.a.store.AddGeneration(ctx, g)
	if err != nil {
		return 0, fmt.Errorf("record generation: %w", err)
	}
	g.Number = n
	if err := beforeTree(n); err != nil {
		j.a.store.SetState(j.cfg.Name, n, store.StateBad, err.Error())
		return 0, err
	}
	// the rescan below trusts the files the apply settled (as a push
	// target's does, applyIndexScope); a refused apply's undo puts back
	// other inodes, which it then reads
	j.applier.Settled = j.settled
	err = j.applier.Apply(ctx, n, ops, IndexLookup(want))
	j.applier.Settled = nil
	if err != nil {
		j.a.store.SetState(j.cfg.Name, n, store.StateBad, err.Error())
		j.resolveFailed()
		j.scanPaths(context.WithoutCancel(ctx), opPaths(ops))
		return 0, fmt.Errorf("apply generation %d: %w", n, err)
	}
	if err := j.scanPaths(context.WithoutCancel(ctx), opPaths(ops)); err != nil {
		j.log.Warn("cannot rescan what the apply wrote", "err", err)
	}
	if err := j.a.after.AfterApply(ctx, &j.cfg, n, g.Changed); err != nil {
		reason := err.Error()
		j.log.Warn("a member's versions failed this node's checks; rolling back", "peer", a.Peer, "generation", n, "reason", reason)
		rerr := j.meshRestore(context.WithoutCancel(ctx), n, before, want, opPaths(ops))
		if rerr != nil {
			reason += "; rollback failed: " + rerr.Error()
		}
		j.a.store.SetState(j.cfg.Name, n, store.StateBad, reason)
		j.resolveFailed()
		j.setStatus(func(s *JobStatus) {
			s.RolledBack++
			s.State, s.LastError = string(store.StateBad), fmt.Sprintf("generation %d from %s rejected by %s: %s", n, a.Peer, j.a.node, reason)
		})
		if errors.Is(err, ErrAsteriskUnavailable) || ctx.Err() != nil {
			// says nothing of the content: taken again at the member's next index
			return 0, fmt.Errorf("not taken now (%s)", reason)
		}
		if rerr == nil {
			// the content put back: its actions run again, then the
			// checks say whose fault it was
			if err := j.meshCheckBefore(ctx, a.Peer, latest, g.Changed); err != nil {
				return 0, err
			}
		}
		return 0, &meshRejection{reason: reason}
	}
	if err := j.a.store.SetState(j.cfg.Name, n, store.StateGood, g.Reason); err != nil {
		j.log.Error("cannot mark generation good", "generation", n, "err", err)
	}
	g.State = store.StateGood
	j.latest, j.recorded = g, g
	note := ""
	if r := j.mesh.reasons[a.Peer]; r != "" {
		note = fmt.Sprintf("generation %d from %s: %s", n, a.Peer, r)
	}
	j.setStatus(func(s *JobStatus) {
		s.Generation, s.State, s.LastError = n, string(store.StateGood), note
		s.LastChange = time.Now()
		s.Applied++
	})
	return n, nil
}

// asteriskUnreachable is the AfterApply's Unreachable for the job's
// changed paths (see AsteriskActions.Unreachable); nil for an AfterApply
// that cannot tell.
func (j *job) asteriskUnreachable(changed []string) error {
	u, ok := j.a.after.(interface {
		Unreachable(*config.Job, []string) error
	})
	if !ok {
		return nil
	}
	return u.Unreachable(&j.cfg, changed)
}

// meshRestore rolls back generation n, which made the tree hold want
// (paths changed) where it held before, once the job's checks refused
// it: it puts back before only where the tree still holds what the apply
// left. A path changed here since (while the checks ran: an edit, a
// delete, a file created, also below a directory the apply made) keeps
// the change, a local version the member's is decided against as any
// other. Each rename that puts a path back is checked as the apply's
// were (pathGuard, guardRun), with stamps taken before the rescan that
// compares.
func (j *job) meshRestore(ctx context.Context, n uint64, before, want index.Index, paths []string) error {
	guard, err := newPathGuard(j.cfg.Path, paths)
	if err != nil {
		return err
	}
	if err := j.scanPaths(ctx, paths); err != nil {
		return fmt.Errorf("rescan before the rollback: %w", err)
	}
	x := index.New(before.Len())
	for p, b := range before.All() {
		if !want.Has(p) && !j.states.Has(p) {
			x.Set(b) // removed by the apply: put back
		}
	}
	touched := make(map[string]bool, len(paths))
	for _, p := range paths {
		touched[p] = true
	}
	var kept []string
	for p, st := range j.states.All() {
		if w, ok := want.Get(p); ok && st.Kind == w.Kind && (w.Kind != index.KindFile || st.Hash == w.Hash && st.Mode == w.Mode) {
			if b, ok := before.Get(p); ok {
				x.Set(b) // as the apply left it: rolled back
			}
			continue
		}
		// changed here since the apply, or never the apply's: it stays,
		// in the directories that hold it
		x.Set(st.Item)
		for d := index.Parent(p); d != ""; d = index.Parent(d) {
			if ds, ok := j.states.Get(d); ok {
				x.Set(ds.Item)
			}
		}
		if touched[p] {
			kept = append(kept, p)
		}
	}
	for _, p := range paths {
		if want.Has(p) && !j.states.Has(p) {
			kept = append(kept, p) // removed here
		}
	}
	if len(kept) > 0 {
		sort.Strings(kept)
		j.log.Warn("changed here while the checks ran; the rollback leaves them", "generation", n, "paths", firstN(kept, 10))
	}
	j.applier.guard = guard
	defer func() { j.applier.guard = nil }()
	return j.restore(ctx, n, x)
}

// keepReverted keeps, as conflict records, the versions this member
// holds that a.Peer reverted because its checks refused them: the author
// (and every member that took them) keeps the rejected content.
func (j *job) keepReverted(ctx context.Context, a *core.Apply, before index.Index, gen uint64) error {
	ms := j.mesh
	for _, it := range a.Items {
		cur, ok := before.Get(it.Path)
		if !ms.reverts[a.Peer][it.Path] || !ok || cur.Kind != index.KindFile || !it.Deleted && cur.Hash == it.Hash {
			continue
		}
		if !j.a.store.Has(cur.Hash) {
			if _, _, err := j.storeFile(ctx, it.Path); err != nil {
				return fmt.Errorf("keep the rejected version of %s: %w", it.Path, err)
			}
		}
		sum := index.Sum([]byte("rejected\x00" + it.Path + "\x00" + cur.Hash.String()))
		rec := store.Conflict{ID: sum.String()[:16], Path: it.Path, Time: time.Now().UTC(), Reason: ms.reasons[a.Peer],
			Winner: store.ConflictSide{Node: a.Peer, Generation: gen, Hash: it.Hash, Deleted: it.Deleted},
			Loser:  store.ConflictSide{Node: j.a.node, Hash: cur.Hash, Size: cur.Size}}
		if it.Deleted {
			rec.Winner.Hash = index.Hash{}
		}
		if err := j.putConflict(rec); err != nil {
			return err
		}
		j.log.Warn("a member's checks rejected this version; it is reverted here and kept", "path", it.Path, "member", a.Peer, "reason", ms.reasons[a.Peer], "conflict", rec.ID)
	}
	return nil
}

// keepLoser makes sure the store holds the losing content of c before
// the apply replaces it: a local version the store lacks is read from the
// tree (before: the tree's state).
func (j *job) keepLoser(ctx context.Context, c core.Conflict, before index.Index) error {
	if c.Loser.Deleted || j.a.store.Has(c.Loser.Hash) {
		return nil
	}
	if cur, ok := before.Get(c.Path); ok && cur.Hash == c.Loser.Hash {
		if _, _, err := j.storeFile(ctx, c.Path); err != nil {
			return fmt.Errorf("keep the losing version of %s: %w", c.Path, err)
		}
	}
	return nil
}

// putMeshConflict writes the record of c, whose winner generation gen of
// this node holds.
func (j *job) putMeshConflict(c core.Conflict, gen uint64) error {
	ms := j.mesh
	rec := store.Conflict{ID: c.ID, Path: c.Path, Time: time.Unix(0, c.Time).UTC(),
		Winner: store.ConflictSide{Node: ms.memberName(c.Winner.Node), Generation: gen, Hash: c.Winner.Hash, Deleted: c.Winner.Deleted},
		Loser:  store.ConflictSide{Node: ms.memberName(c.Loser.Node), Hash: c.Loser.Hash, Size: c.Loser.Size, Deleted: c.Loser.Deleted}, Reason: c.Reason}
	if err := j.putConflict(rec); err != nil {
		return err
	}
	j.log.Info("concurrent versions resolved; the loser is kept", "path", c.Path, "winner", rec.Winner.Node, "loser", rec.Loser.Node, "loser_deleted", c.Loser.Deleted, "conflict", c.ID)
	return nil
}

// putConflict writes a conflict record of the job and counts its records
// in the status (the dashboard reads them when the count changes).
func (j *job) putConflict(rec store.Conflict) error {
	if err := j.a.store.PutConflict(j.cfg.Name, rec); err != nil {
		return err
	}
	j.countConflicts()
	return nil
}

// countConflicts sets the status's count of the job's conflict records.
func (j *job) countConflicts() {
	n, err := j.a.store.ConflictCount(j.cfg.Name)
	if err != nil {
		j.log.Warn("cannot count the conflict records", "err", err)
		return
	}
	j.setStatus(func(s *JobStatus) { s.Conflicts = n })
}

// recordMeshGeneration records the tree as a new good generation made by
// origin (this node's own edits): history and rollback material.
func (j *job) recordMeshGeneration(ctx context.Context, origin string, changed []string, reason string) {
	x := j.states.Index()
	for p, it := range x.All() {
		if it.Kind == index.KindFile && !j.a.store.Has(it.Hash) {
			x.Delete(p) // changed again since; the next scan records it
		}
	}
	sort.Strings(changed)
	g := &store.Generation{Job: j.cfg.Name, Time: time.Now(), Origin: origin, Changed: changed, State: store.StateGood, Reason: reason, Index: x}
	n, err := j.a.store.AddGeneration(ctx, g)
	if err != nil {
		j.log.Warn("cannot record a generation of local changes", "err", err)
		return
	}
	g.Number = n
	j.latest, j.recorded = g, g
	j.setStatus(func(s *JobStatus) { s.Generation, s.State, s.LastChange = n, string(store.StateGood), time.Now() })
}

// saveMesh persists the mesh index.
func (j *job) saveMesh() {
	ms := j.mesh
	p := meshPersisted{Mesh: map[string][]byte{}}
	for _, it := range ms.m.Items() {
		p.Mesh[it.Path] = store.MarshalItem(&it)
	}
	if err := j.a.store.PutJobState(j.cfg.Name, p); err != nil {
		j.log.Warn("cannot save the mesh index", "err", err)
	}
}

// offerMesh serves the content of every live entry and of the conflict
// records to the members.
func (j *job) offerMesh() {
	serving := map[index.Hash]int64{}
	for _, it := range j.mesh.m.Items() {
		if !it.Deleted {
			serving[it.Hash] = it.Size
		}
	}
	if cs, err := j.a.store.Conflicts(j.cfg.Name); err == nil {
		for _, c := range cs {
			if !c.Loser.Hash.IsZero() {
				if _, ok := serving[c.Loser.Hash]; !ok {
					serving[c.Loser.Hash] = c.Loser.Size
				}
			}
		}
	}
	set := newServedSet(serving)
	j.mu.Lock()
	j.serving.release()
	j.serving = set
	j.mu.Unlock()
}

// isMeshMember reports whether peer is a member of j, a mesh job.
func (j *job) isMeshMember(peer string) bool {
	return j.cfg.Mode == config.ModeMesh && peer != j.a.node && contains(j.cfg.Targets, peer)
}

// meshRejection is the error of an apply whose versions failed this
// member's actions or checks (the tree is rolled back).
type meshRejection struct{ reason string }

func (e *meshRejection) Error() string { return "rejected: " + e.reason }

// truncateText cuts s to at most n bytes.
func truncateText(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return strings.ToValidUTF8(s[:n], "")
}
