package syncer

import (
	"context"
	"errors"
	"fmt"
	"iter"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"pbxsync/hostmon"
	"pbxsync/internal/beneath"
	"pbxsync/internal/config"
	"pbxsync/internal/index"
	"pbxsync/internal/store"
	"pbxsync/internal/tmpl"
	"pbxsync/internal/wire"
	"pbxsync/syncer/core"
)

// event is one input to a job's loop.
type event struct {
	peer       string
	msg        wire.Message // *wire.Announce or *wire.Result
	peerChange bool
	peerUp     bool
	at         time.Time // when the peer change happened
	rollback   *rollbackReq
	syncNow    chan error                // SyncNow: the outcome goes here
	do         func(ctx context.Context) // run in the job's loop (see inLoop)
	// noIndex: do does not use the newest index, so a parked one stays
	// parked (reading it back costs ~0.1 s and ~17 MB at 100,000 files)
	noIndex bool
	// refused, when set, is called instead of do when the job cannot run
	// it (its newest index could not be read back, see wake)
	refused func(error)
}

type rollbackReq struct {
	to     uint64 // 0: the generation before the newest good one
	hold   bool   // a push target: roll back and hold (see holdAt)
	resume bool   // end a hold instead
	reply  chan rollbackResult
}

type rollbackResult struct {
	generation uint64
	err        error
}

// targetState is what the source knows of one target's progress: a
// core.Target (view) with its last answer in full, for the status.
type targetState struct {
	version  uint64 // last version announced to it
	sentAt   time.Time
	result   *wire.Result // its last answer
	needFull bool         // it asked for a complete announcement
	// progressAt is when it last reported progress on the version it
	// was sent (see core.Target.ProgressAt).
	progressAt time.Time
	// askedSame: see core.Target.AskedSame.
	askedSame uint64
}

// view is t as the push policy reads it.
func (t *targetState) view(name string) core.Target {
	v := core.Target{Name: name, Sent: t.version, SentAt: unixNano(t.sentAt), NeedFull: t.needFull,
		ProgressAt: unixNano(t.progressAt), AskedSame: t.askedSame}
	if t.result != nil {
		a := answerOf(t.result)
		v.Answer = &a
	}
	return v
}

// take makes t the state n a step of the push policy returned; r is the
// answer that step took (n.Answer), nil when it took none.
func (t *targetState) take(n core.Target, r *wire.Result) {
	t.version, t.sentAt, t.needFull, t.progressAt, t.askedSame = n.Sent, timeOf(n.SentAt), n.NeedFull, timeOf(n.ProgressAt), n.AskedSame
	switch {
	case n.Answer == nil:
		t.result = nil
	case r != nil:
		t.result = r
	}
}

// unixNano is t in Unix nanoseconds, 0 for the zero time.
func unixNano(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixNano()
}

// timeOf is the time of Unix nanoseconds n, the zero time for 0.
func timeOf(n int64) time.Time {
	if n == 0 {
		return time.Time{}
	}
	return time.Unix(0, n)
}

// persisted is the per-job state kept in the store between runs.
type persisted struct {
	// Scan is the scan state as format-1 stores kept it (one value); it
	// is read once and then kept per path (see saveScan).
	Scan map[string]hostmon.FileState `json:"scan,omitempty"`
	Bad  map[string]string            `json:"bad"` // index digest -> reason it failed here
	// Held is the generation an operator holds this push target at
	// (rollback --hold), 0 when not held.
	Held uint64 `json:"held,omitempty"`
	// RelayNewest is the newest version relayed to this push target
	// (federation.newest, the replay guard).
	RelayNewest uint64 `json:"relay_newest,omitempty"`
}

// job is one [[job]] on this node. Everything but mu-guarded fields is
// owned by the job's loop goroutine.
type job struct {
	a        *Agent
	cfg      config.Job
	log      *slog.Logger
	isSource bool
	filter   *hostmon.Filter
	applier  *Applier
	inbox    chan event
	kind     jobKind // nil for a files job
	cancel   context.CancelFunc
	done     chan struct{}

	// templates are the job's templates globs (see render.go)
	templates *tmpl.Set
	// window holds a source's announcements outside the job's sync
	// windows (see window.go)
	window windowGate

	states *hostmon.States // the scan state (see scanstate.go)
	// room is the new files of the apply under way, for which its first
	// read-back makes room in states (settled)
	room  newFileRoom
	drift drift // where states may differ from a generation's index
	dirty bool
	// scanShown is when a scan last took its progress out of the status
	// (scanProgress.stop; zero if none showed): a record right after it
	// shows its own at once (startRecordProgress)
	scanShown time.Time
	// filesRead counts the files the job's scans read and hashed (their
	// stat was not trusted); tests read it from other goroutines.
	filesRead atomic.Int64
	// unreadable: entries of the tree the job cannot read, with why; they
	// keep their state of the newest generation (see keepLastKnown).
	unreadable      map[string]string
	unreadableTried time.Time
	refused         map[string]string    // entries whose names may not be synced, with why
	refusedRemote   map[string]string    // target: paths of the last announcement it refused
	writing         map[string]time.Time // files open for writing the job waits on, since when (writing.go)
	// announced is the source's newest index as announced (before this
	// target's filters), the base of its next incremental announcement.
	announced        index.Index
	announcedVersion uint64
	plain            plainWant      // target: the base for admitting an incremental announcement by its changes
	spare            spareIndex     // target: a copy of the newest index, made the next one by the changes alone
	spill            statesSpill    // when the scan state last changed (spill.go)
	park             indexPark      // the newest index let go of while idle (park.go)
	parts            wire.Assembler // target: the parts of an announcement sent in several messages
	admitting        partAdmission  // target: a complete announcement admitted as its parts arrive
	pendingRescan    *appliedRescan // target: the rescan of what the last apply wrote, run once its source has the answer
	spaceWait        *spaceWait     // target: the wait for room after an apply that did not fit (spacewait.go)
	spaceFails       int            // target: applies in a row that ran out of room as they wrote
	digests          digestCache    // digests of the indexes the job works with
	refusalLogged    uint64         // the source version whose refused paths were logged
	// retry is the newest generation whose apply failed for a reason
	// that says nothing about its content: a retry reuses its record.
	retry       *store.Generation
	retryDigest index.SetDigest // of retry's index when it failed
	// checksFailHere: a push target's last generation failed its checks,
	// and they failed on the content put back too (core.ChecksFailHere);
	// a configuration reload asks the source for its newest generation.
	checksFailHere bool
	keptLogged     uint64            // the source version whose kept unreadable paths were logged
	latest         *store.Generation // source: newest generation; target: newest applied good one
	// recorded is the newest generation in the store, when this job knows
	// it (recorded it or loaded it): the base a new one is recorded
	// against by its changes alone (see record).
	recorded *store.Generation
	// announcements are the source's messages for latest, with and
	// without inline deltas (see announcementFor); prev is the generation
	// before latest, their delta base, kept as what it held where latest
	// differs from it.
	announcements map[announceKind]*wire.Announce
	// announceItems makes the items of the complete announcements (whose
	// Items are nil): each part's items are made from latest's index as
	// the part is sent (announceParts), so a source does not hold every
	// item of a large index twice, as an index and as wire items.
	announceItems map[*wire.Announce]iter.Seq[wire.Item]
	prev          prevGen
	targets       map[string]*targetState
	bad           map[string]string
	held          uint64 // target: generation an operator holds it at, 0 when not held

	// release asks the loop to save the scan state of a large generation
	// and hand the memory it used back to the system (see onTick).
	release  bool
	lastSave time.Time // when the job's state was last saved

	// scanDirty holds the paths whose saved scan state is out of date
	// (and what lies below them); see saveScan.
	scanDirty map[string]bool
	// scanSaving is closed when the step of scanSave being written beside
	// the loop ends; nil when none runs.
	scanSaving chan struct{}
	// scanSave is the save of the scan state under way, step by step
	// (saveScanInBackground); nil when none is.
	scanSave *scanSave

	mu      sync.Mutex
	status  JobStatus
	serving *servedSet // the content it serves (see offer)
	// servedRefs counts the files of the newest generation per content
	// and servedPrev is the content only the one before has: what
	// offerChange needs to update serving by a generation's changes.
	servedRefs *servedRefs
	servedPrev map[index.Hash]int64

	mesh *meshState // a mesh job's machine (mesh.go); nil for push

	fed federation // sites and relays of a push job (relay.go)
	// handed is what a mesh relay handed on to its site and may lack
	// (relay_mesh.go)
	handed meshHanded

	// taking is the announcement in parts the target is taking, read by
	// the receiving goroutines (see repeatOfTaken); nil when none.
	taking atomic.Pointer[takingKey]

	// pre, on a target without a generation, fetches the content its
	// source offers ahead of the announcement (prefetch.go); nil when it
	// takes no offers.
	pre atomic.Pointer[prefetcher]
}

func (a *Agent) newJob(c config.Job) (*job, error) {
	if c.Type != config.TypeFiles && c.Type != config.TypePostgres {
		return nil, fmt.Errorf("job %q: type %q is not supported by this agent yet", c.Name, c.Type)
	}
	if c.Mode != config.ModePush && c.Mode != config.ModeMesh {
		return nil, fmt.Errorf("job %q: mode %q is not supported by this agent; use push or mesh", c.Name, c.Mode)
	}
	f, ts, err := jobFilter(c)
	if err != nil {
		return nil, fmt.Errorf("job %q: %w", c.Name, err)
	}
	j := &job{
		a: a, cfg: c, log: a.log.With("job", c.Name), isSource: c.Source == a.node, filter: f, templates: ts,
		inbox: make(chan event, 1024), done: make(chan struct{}), targets: map[string]*targetState{},
		bad: map[string]string{}, serving: &servedSet{},
	}
	if j.window, err = newWindowGate(c); err != nil {
		return nil, err
	}
	j.status = JobStatus{Name: c.Name, Type: c.Type, Mode: c.Mode, Source: c.Source, Path: c.Path, State: "starting"}
	if c.Mode == config.ModeMesh {
		j.status.Role = "member"
	} else if j.isSource {
		j.status.Role = "source"
	} else {
		j.status.Role = "target"
	}
	if c.Type == config.TypePostgres && c.Mode == config.ModePush {
		j.kind = newPGJob(j)
	}
	return j, nil
}

// post hands an event to the job's loop without blocking the caller; when
// the inbox is full the event is dropped (announcements are repeated until
// acknowledged, so nothing is lost for good).
func (j *job) post(e event) {
	select {
	case j.inbox <- e:
	default:
		j.log.Warn("job inbox full; dropping an event", "peer", e.peer)
	}
}

func (j *job) setError(msg string) {
	j.mu.Lock()
	defer j.mu.Unlock()
	j.status.State = "error"
	j.status.LastError = msg
}

// openApplier makes the job root, chooses its staging directory and sets
// j.applier, rolling forward or back what a crash left in its journal.
func (j *job) openApplier(ctx context.Context) error {
	root := j.cfg.Path
	if err := os.MkdirAll(root, 0o755); err != nil {
		return fmt.Errorf("job root %s: %w", root, err)
	}
	dataStaging := filepath.Join(j.a.cfgSnapshot().Node.DataDir, "staging", j.cfg.Name)
	staging, err := StagingDir(root, dataStaging)
	if err != nil {
		return err
	}
	j.applier = &Applier{Job: j.cfg.Name, Root: root, Staging: staging, DataStaging: dataStaging, Store: j.a.store, Log: j.log, Umask: j.a.umask, UmaskKnown: j.a.umaskKnown}
	_, err = j.applier.Recover(ctx)
	return err
}

// watchAndScan starts watching root, then scans the whole tree. The
// watch starts before the scan: a change made during the scan is reported
// by the watcher (or, if its events overflow, makes it ask for a full
// rescan), so one walk of the tree is enough. The watcher's end is sent
// on watchErr; stop ends it.
func (j *job) watchAndScan(ctx context.Context, root string) (w *hostmon.Watcher, watchErr <-chan error, stop func(), err error) {
	watcher, err := hostmon.NewWatcher(root, j.filter, j.cfg.Debounce, j.log)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("watch %s: %w", root, err)
	}
	// The goroutine uses its own copy: the named result w is set to nil
	// when the scan fails, while the watcher may still be starting.
	wctx, cancel := context.WithCancel(ctx)
	errc := make(chan error, 1)
	go func() { errc <- watcher.Run(wctx) }()
	if err := j.scanAll(ctx); err != nil {
		cancel()
		return nil, nil, nil, fmt.Errorf("scan %s: %w", root, err)
	}
	return watcher, errc, cancel, nil
}

func (j *job) run(ctx context.Context) error {
	if j.kind != nil {
		return j.kind.run(ctx)
	}
	if j.cfg.Mode == config.ModeMesh && j.cfg.Type == config.TypePostgres {
		return j.runMeshPG(ctx)
	}
	if j.cfg.Mode == config.ModeMesh {
		return j.runMesh(ctx)
	}
	// a loop that stopped left its parked index behind: this run reads
	// the newest generation from the store afresh
	j.park = indexPark{}
	if err := j.openApplier(ctx); err != nil {
		return err
	}
	// a wait for room (spacewait.go) reports for this loop only
	defer j.stopSpaceWait()
	j.startPrefetch(ctx) // a target's first generation: its source's offers, from now on
	root := j.cfg.Path
	var err error
	var p persisted
	if _, err := j.a.store.JobState(j.cfg.Name, &p); err != nil {
		j.log.Warn("cannot read saved job state; rescanning everything", "err", err)
	}
	if p.Bad != nil {
		j.bad = p.Bad
	}
	j.held = p.Held
	j.fed.newest = p.RelayNewest
	if p.Scan == nil {
		if j.states, err = j.loadScan(); err != nil {
			j.log.Warn("cannot read saved scan state; rescanning everything", "err", err)
			j.states = nil
		}
	} else {
		j.states = hostmon.NewStates(p.Scan)
		j.noteScanned(nil, p.Scan, nil) // move it to the per-path form
	}
	w, watchErr, stopWatch, err := j.watchAndScan(ctx, root)
	if err != nil {
		return err
	}
	defer stopWatch()

	if j.isSource {
		err = j.startSource(ctx)
	} else {
		err = j.startTarget(ctx)
	}
	if err != nil {
		return err
	}
	defer j.save()

	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	j.lastSave = time.Now()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case ch, ok := <-w.Changes():
			if !ok {
				if ctx.Err() != nil {
					return ctx.Err()
				}
				err := <-watchErr
				return fmt.Errorf("watching %s stopped: %v", root, err)
			}
			j.onLocalChange(ctx, ch)
		case e := <-j.inbox:
			j.onEvent(ctx, e)
		case <-tick.C:
			j.onTick(ctx)
		}
		if err := j.park.err; err != nil {
			j.park = indexPark{}
			return err
		}
	}
}

// saveEvery is how often a job whose state changed saves it.
const saveEvery = 30 * time.Second

// onTick is the job loop's work once a second: after a large generation
// its scan state is saved at once, in the background (not up to 30 s
// later on the loop, when the first edits after an initial sync waited
// behind the write of every path's state), moved out of memory (spill.go)
// and its memory handed back; a
// target lets go of its spare index once idle (and hands that memory
// back); unreadable entries are retried, a source repeats its
// announcements, and a changed state is saved every saveEvery.
func (j *job) onTick(ctx context.Context) {
	if j.release {
		j.release = false
		j.saveScanInBackground()
		if j.scanSave != nil {
			j.scanSave.release, j.scanSave.spill = true, true // once it is written
		} else {
			j.spillLargeStates()
			j.releaseMemory()
		}
	}
	if j.dropIdleSpare(time.Now()) {
		j.log.Debug("let go of the spare copy of the newest index", "idle", spareIdle)
		if j.scanSave != nil {
			j.scanSave.release = true // once it is written
		} else {
			j.releaseMemory()
		}
	}
	j.spillIdleStates(ctx, time.Now())
	j.continueScanSave()
	j.retryWriting(ctx)
	j.retryUnreadable(ctx)
	if j.isSource {
		j.announce(false)
	}
	if j.dirty && time.Since(j.lastSave) > saveEvery {
		j.save()
		j.lastSave = time.Now()
	}
	j.checkServed()
	j.parkIdleIndex(time.Now())
}

// persisted is the job state save keeps (all but the scan state).
func (j *job) persisted() persisted {
	return persisted{Bad: j.bad, Held: j.held, RelayNewest: j.fed.newest}
}

func (j *job) save() {
	if err := j.saveScan(); err != nil {
		j.log.Warn("cannot save scan state", "err", err)
		return
	}
	if err := j.a.store.PutJobState(j.cfg.Name, j.persisted()); err != nil {
		j.log.Warn("cannot save job state", "err", err)
		return
	}
	j.dirty = false
}

// returnedAt is the event of a target that came up at at (zero: unknown).
func returnedAt(at time.Time) core.Returned {
	if at.IsZero() {
		return core.Returned{}
	}
	return core.Returned{Time: at.UnixNano()}
}

func (j *job) onEvent(ctx context.Context, e event) {
	j.rescanPending(ctx) // left by an apply whose answer went out
	if e.do != nil && e.noIndex {
		e.do(ctx)
		return
	}
	if !j.wake() {
		j.refuse(e, j.park.err)
		return
	}
	switch {
	case e.rollback != nil && e.rollback.resume:
		e.rollback.reply <- rollbackResult{err: j.resume()}
	case e.rollback != nil:
		gen, err := j.rollback(ctx, e.rollback.to, e.rollback.hold)
		e.rollback.reply <- rollbackResult{generation: gen, err: err}
	case e.syncNow != nil:
		e.syncNow <- j.syncNow(ctx)
	case e.do != nil:
		e.do(ctx)
	case e.peerChange:
		j.markPeerDown(e)
		if j.isSource && e.peerUp {
			if _, ok := j.targets[e.peer]; ok {
				j.stepTarget(e.peer, returnedAt(e.at), nil) // announce again at once: it may have lost its state while away
			}
			j.announce(false)
		}
		if !e.peerUp {
			j.relayDown(e.peer)
		}
	case e.msg != nil:
		switch m := e.msg.(type) {
		case *wire.Announce:
			j.onAnnounce(ctx, e.peer, m)
		case *wire.Result:
			j.onResult(e.peer, m)
		case *wire.Relay:
			j.onRelay(ctx, e.peer, m)
		}
	}
}

// refuse answers what waits for the outcome of e, which the job cannot
// handle: err says why.
func (j *job) refuse(e event, err error) {
	switch {
	case e.rollback != nil:
		e.rollback.reply <- rollbackResult{err: err}
	case e.syncNow != nil:
		e.syncNow <- err
	case e.refused != nil:
		e.refused(err)
	}
}

// onLocalChange rescans what the watcher reported. On a source a real
// change becomes a new generation; on a target it is a local edit, which
// push mode overwrites with the source's version.
func (j *job) onLocalChange(ctx context.Context, ch hostmon.Change) {
	if j.isSource && j.park.parked != nil {
		j.wakeTargets(ctx) // they read theirs back while this one does
	}
	if !j.wake() {
		return
	}
	var err error
	if ch.Rescan {
		j.log.Info("rescanning the whole tree", "reason", "watcher overflow")
		err = j.scanAll(ctx)
	} else {
		err = j.scanChange(ctx, ch.Paths, ch.Shallow)
	}
	if err != nil {
		// the job's view stays as it was: a failed scan is no change
		j.log.Error("rescan failed; keeping the last known state of the tree", "err", err)
		j.setError("rescan failed: " + err.Error())
		return
	}
	if err := j.settleLocalChanges(ctx); err != nil {
		j.setError(err.Error())
	}
}

// settleLocalChanges acts on what the last scan found: on a source a real
// change becomes a new generation, announced at once; on a push target a
// local edit is overwritten with the source's version (the local content
// is kept in the store). It logs what it does and returns why it failed.
func (j *job) settleLocalChanges(ctx context.Context) error {
	if j.isSource {
		if j.latest != nil && j.treeHolds(j.latest.Index) {
			return nil
		}
		var err error
		if j.latest != nil && j.recorded == j.latest && j.drift.knows(j.latest.Index) {
			err = j.newSourceChange(ctx) // the drift's paths only
		} else {
			err = j.newSourceGeneration(ctx, j.states.Index(), "")
		}
		if err != nil {
			j.log.Error("cannot record the change", "err", err)
			return fmt.Errorf("record the change: %w", err)
		}
		j.announce(true)
		j.renderLogged(ctx, j.latest.Index, j.latest.Changed)
		return nil
	}
	if j.latest == nil || j.treeHolds(j.latest.Index) {
		return nil
	}
	drifted := j.drift.list() // treeHolds tracks the drift against latest
	changed := Changed(subIndex(j.latest.Index, drifted), j.statesAt(drifted))
	j.log.Warn("local change on a push target; restoring the source's version (the local content is kept in the store)", "paths", firstN(changed, 10))
	if err := j.restore(ctx, j.latest.Number, j.latest.Index); err != nil {
		j.log.Error("cannot restore the source's version", "err", err)
		return fmt.Errorf("restore the source's version: %w", err)
	}
	return nil
}

func firstN(s []string, n int) []string {
	if len(s) <= n {
		return s
	}
	return append(slices.Clone(s[:n]), fmt.Sprintf("… %d more", len(s)-n))
}

// preserve puts the current content of every local file that ops will
// overwrite or delete into the store, so that nothing is lost and a
// rollback can restore it without the network. It returns the local
// symlinks that ops will replace.
func (j *job) preserve(ctx context.Context, ops []Op) ([]store.Link, error) {
	var links []store.Link
	dirs := &parentDirs{root: j.cfg.Path}
	defer dirs.close()
	for _, op := range ops {
		if (op.Kind == OpMkdir || op.Kind == OpWrite) && op.Have().Kind == 0 {
			if l, ok := j.keepSymlink(ctx, dirs, op.Path); ok {
				links = append(links, l)
			}
		}
		if h := op.Have(); h.Kind != index.KindFile || h.Hash.IsZero() || j.a.store.Has(h.Hash) {
			continue
		}
		if op.Kind != OpWrite && op.Kind != OpDelete {
			continue
		}
		// Whatever the file holds now is kept, even if it changed since
		// the last scan: that is the local edit being overwritten.
		err := j.keepFile(ctx, op.Path)
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("keep the current %s before replacing it: %w", op.Path, err)
		}
	}
	return links, nil
}

// keepFile puts the file at rel into the store, reached without
// following a symlink.
func (j *job) keepFile(ctx context.Context, rel string) error {
	f, err := beneath.OpenFile(j.cfg.Path, rel, os.O_RDONLY)
	if err != nil {
		return err
	}
	defer f.Close()
	_, _, err = j.a.store.PutReader(ctx, f)
	return err
}

// keepSymlink keeps a local symlink at rel, which an apply is about to
// replace by the source's directory or file, in the store (its target as
// content, labelled with both), logs it and returns it, so that the
// generation being applied records it and its rollback puts it back.
func (j *job) keepSymlink(ctx context.Context, dirs *parentDirs, rel string) (store.Link, bool) {
	dir, base, err := dirs.open(rel)
	if err != nil {
		return store.Link{}, false
	}
	m, err := beneath.Lstat(dir, base)
	if err != nil || m&os.ModeSymlink == 0 {
		return store.Link{}, false
	}
	target, err := beneath.Readlink(dir, base)
	if err != nil {
		j.log.Warn("cannot read a local symlink about to be replaced", "path", rel, "err", err)
		return store.Link{}, false
	}
	label := fmt.Sprintf("symlink %s -> %s (replaced by the source's version)", rel, target)
	h, _, err := j.a.store.PutReader(ctx, strings.NewReader(target))
	if err == nil {
		err = j.a.store.SaveExtra(j.cfg.Name, label, h)
	}
	if err != nil {
		j.log.Warn("cannot keep a local symlink about to be replaced in the store", "path", rel, "target", target, "err", err)
	}
	j.log.Warn("replacing a local symlink where the source has a directory or file; a rollback puts it back", "path", rel, "target", target)
	return store.Link{Path: rel, Target: target}, true
}

// putBackLinks recreates the local symlinks that a rolled-back generation
// replaced, where the path is free again; a path that holds something
// else now is left alone and logged.
func (j *job) putBackLinks(ctx context.Context, links []store.Link) {
	var paths []string
	for _, l := range links {
		err := func() error {
			dir, base, err := beneath.Parent(j.cfg.Path, l.Path)
			if err != nil {
				return err
			}
			defer dir.Close()
			if _, err := beneath.Lstat(dir, base); err == nil {
				return errors.New("the path is not free")
			}
			if err := beneath.Symlink(l.Target, dir, base); err != nil {
				return err
			}
			return dir.Sync()
		}()
		if err != nil {
			j.log.Warn("cannot put back a local symlink that the rolled-back generation replaced", "path", l.Path, "target", l.Target, "err", err)
			continue
		}
		j.log.Info("put back a local symlink that the rolled-back generation replaced", "path", l.Path, "target", l.Target)
		paths = append(paths, l.Path)
	}
	if len(paths) > 0 {
		if err := j.scanPaths(context.WithoutCancel(ctx), paths); err != nil {
			j.log.Warn("cannot rescan the links put back", "err", err)
		}
	}
}

// refresh rescans the paths where the tree and want differ, so that an
// edit the watcher has not reported yet is seen before planning on it.
func (j *job) refresh(ctx context.Context, want index.Index) error {
	paths := planPaths(j.states.Index(), want)
	if len(paths) == 0 {
		return nil
	}
	return j.scanPaths(ctx, paths)
}

// ensureStored puts into the store the content of fromTree, files whose
// content the store lacked and the tree holds at their path (see
// toFetch), reading each from the tree. One stored meanwhile (the same
// content fetched for another path) is not read again.
func (j *job) ensureStored(ctx context.Context, fromTree []index.Item) error {
	if len(fromTree) == 0 {
		return nil
	}
	for _, it := range j.missingBlobs(fromTree) {
		st, ok := j.states.Get(it.Path)
		if !ok || st.Hash != it.Hash {
			return fmt.Errorf("%s (%s) is neither in the store nor in the tree", it.Path, it.Hash.Short())
		}
		h, _, err := j.storeFile(ctx, it.Path)
		if err != nil {
			return err
		}
		if h != it.Hash {
			return fmt.Errorf("%s changed while it was being stored", it.Path)
		}
	}
	return nil
}

// beforeApply gives the tree as it was before an apply: what a failed
// apply restores. It is built only when it is needed.
type beforeApply func() index.Index

// fixedBefore is the beforeApply of a known index.
func fixedBefore(x index.Index) beforeApply {
	if x.IsNil() {
		return nil
	}
	return func() index.Index { return x }
}

// applyIndex makes the tree equal to want (content must be in the store)
// and rescans what it touched so that our own writes are not taken for
// local changes. It returns the local tree before the change. restore
// says want is content of an earlier good generation (a rollback): a
// failed restore is resolved at once, while the caller of a failed
// forward apply restores the tree and then calls resolveFailed.
func (j *job) applyIndex(ctx context.Context, gen uint64, want index.Index, restore bool) (beforeApply, error) {
	return j.applyIndexScope(ctx, gen, want, restore, nil)
}

// applyIndexScope is applyIndex where the tree may differ from want only
// at scope (nil: anywhere): it plans and rescans those paths only, and
// from then on tracks where the tree may differ from want.
func (j *job) applyIndexScope(ctx context.Context, gen uint64, want index.Index, restore bool, scope []string) (beforeApply, error) {
	before, rescan, err := j.applyUnscanned(ctx, gen, want, restore, scope)
	if rescan == nil {
		return before, err
	}
	serr := j.rescanApplied(ctx, rescan)
	if err != nil {
		return before, err
	}
	return before, serr
}

// applyUnscanned is applyIndexScope without the rescan of what the apply
// wrote: it returns that rescan (nil when the apply wrote nothing) for
// the caller to run (rescanApplied) before the job's view of the tree is
// used again. A forward apply's answer to its source goes out first: at
// 100k files the rescan takes half a second, and it finds, on a target
// whose watcher reports every change anyway, what the apply read back.
func (j *job) applyUnscanned(ctx context.Context, gen uint64, want index.Index, restore bool, scope []string) (beforeApply, *appliedRescan, error) {
	j.rescanPending(ctx) // the view of the tree this apply plans on
	if err := j.refreshScope(ctx, want, scope); err != nil {
		return fixedBefore(j.states.Index()), nil, err
	}
	var before beforeApply
	var ops []Op
	if scope != nil && !j.drift.base.IsNil() {
		scope = append(scope, j.drift.list()...) // and what the refresh found
		before = j.treeBefore(scope)
		ops = PlanPaths(j.stateLookup, IndexLookup(want), scope)
	} else {
		scope = nil
		x := j.states.Index()
		before = fixedBefore(x)
		ops = Plan(x, want)
	}
	if len(ops) == 0 {
		if scope != nil {
			j.drift.reset(want, scope)
		}
		return before, nil, nil
	}
	links, err := j.preserve(ctx, ops)
	if err != nil {
		return before, nil, err
	}
	if len(links) > 0 && !restore {
		// durable before the apply replaces them: a rollback of gen,
		// even after a crash, finds them here
		if err := j.a.store.AddLinks(j.cfg.Name, gen, links); err != nil {
			return before, nil, fmt.Errorf("record the local symlinks the apply replaces: %w", err)
		}
	}
	// the files the apply writes are known to the rescan by their state
	// read back after the rename (hostmon.Settled): it trusts them instead
	// of reading and hashing all of them again
	j.applier.Settled = j.settled
	j.room = newFilesOf(ops)
	if restore {
		err = j.applier.Restore(ctx, gen, ops, IndexLookup(want))
	} else {
		err = j.applier.Apply(ctx, gen, ops, IndexLookup(want))
	}
	j.applier.Settled = nil
	// the directories that stand for the new files below them, whether
	// or not the apply got that far: a note saves what is there
	if len(j.room.dirs) > 0 {
		j.noteDirty(slices.Sorted(maps.Keys(j.room.dirs)))
	}
	j.room = newFileRoom{}
	if err != nil && restore && ctx.Err() == nil {
		j.resolveFailed()
	}
	return before, &appliedRescan{gen: gen, paths: opPaths(ops), want: want, scope: scope, applied: err == nil}, err
}

// appliedRescan is the rescan of the paths an apply of generation gen
// wrote, so that its own writes are not taken for local changes, and of
// an apply over a scope that succeeded (applied) the reset of the drift
// it ends.
type appliedRescan struct {
	gen     uint64
	paths   []string
	want    index.Index
	scope   []string
	applied bool
}

// rescanApplied runs r.
func (j *job) rescanApplied(ctx context.Context, r *appliedRescan) error {
	t0, read0 := time.Now(), j.filesRead.Load()
	err := j.scanPaths(context.WithoutCancel(ctx), r.paths)
	if took := time.Since(t0); took > progressAfter {
		j.log.Info("rescanned what the apply wrote", "generation", r.gen, "paths", len(r.paths), "read", j.filesRead.Load()-read0, "took", took.Round(time.Millisecond))
	}
	if r.applied && err == nil && r.scope != nil {
		j.drift.reset(r.want, append(r.scope, j.drift.list()...))
	}
	return err
}

// rescanPending runs the rescan a forward apply left (see applyUnscanned),
// if any. A rescan that fails leaves the job's view as it was, as any
// failed scan does; an apply that succeeded stands.
func (j *job) rescanPending(ctx context.Context) {
	r := j.pendingRescan
	if r == nil {
		return
	}
	j.pendingRescan = nil
	if err := j.rescanApplied(ctx, r); err != nil {
		j.log.Error("rescan of what the apply wrote failed; keeping the last known state of the tree", "generation", r.gen, "err", err)
		j.setError("rescan failed: " + err.Error())
	}
}

// newFileRoom is the files an apply writes where the tree has nothing:
// those its read-backs add to the job's view of the tree (settled),
// which makes room for them at the first (hostmon.States.GrowFor), once
// the stage step let go of the prestaged files. A directory the apply
// makes, with at most scanSaveChunk new paths below it, stands for them
// in the notes of the next save (as newPathRoots has a first scan's
// directories do): their read-backs note nothing of their own, and the
// directory is noted once the apply is done. 100,000 noted paths were 4
// MiB of the target's heap as the apply of an initial sync ended.
type newFileRoom struct {
	first string // the first of their paths
	n     int
	dirs  map[string]bool // the directories that stand for the new paths below them
}

// newFilesOf returns the new files ops write, and the directories they
// make that stand for the new paths below them.
func newFilesOf(ops []Op) newFileRoom {
	var r newFileRoom
	below := map[string]int{} // the directories ops make: how many new paths lie below each
	for _, op := range ops {
		if op.Kind == OpMkdir && op.Path != "" {
			below[op.Path] = 0
		}
	}
	for _, op := range ops {
		newFile := op.Kind == OpWrite && op.prior == nil
		if newFile {
			if r.n == 0 || op.Path < r.first {
				r.first = op.Path
			}
			r.n++
		}
		if len(below) > 0 && (newFile || op.Kind == OpMkdir) {
			countBelow(below, op.Path)
		}
	}
	r.dirs = standingDirs(below)
	return r
}

// covers reports whether a directory of r stands for p, a new path.
func (r *newFileRoom) covers(p string) bool {
	return len(r.dirs) > 0 && underSet(index.Parent(p), r.dirs)
}

// settled records st, the state of a file an apply has just written, as
// the job's scan state of it, for the rescan that follows the apply to
// trust (Applier.Settled), and notes it for the next save and as a drift,
// as a scan notes what it changes (the rescan finds it as it is and
// leaves it). A path whose state is not a file (a directory the apply
// replaced by a file) is left to the rescan, which drops the states of
// what was below it.
func (j *job) settled(st hostmon.FileState) {
	if j.states == nil {
		j.states = &hostmon.States{}
	}
	old, ok := j.states.Get(st.Path)
	if ok && old.Kind != index.KindFile {
		// a directory (or link) the apply replaced by this file: the
		// rescan must see the change of kind to drop the states below it
		return
	}
	if ok {
		st.Version = old.Version
	}
	if j.room.n > 0 {
		j.states.GrowFor(j.room.first, j.room.n)
		j.room.n = 0
	}
	j.states.Set(st)
	if ok || !j.room.covers(st.Path) {
		j.noteDirty([]string{st.Path})
	}
	j.drift.touch([]string{st.Path})
}

// restore brings the tree back to x, the content of generation gen.
// Its templates render again: their files get their rendering of x.
func (j *job) restore(ctx context.Context, gen uint64, x index.Index) error {
	_, err := j.applyIndex(ctx, gen, x, true)
	if err == nil {
		j.renderAll(ctx, x)
	}
	return err
}

// resolveFailed ends a failed apply: its journal and staged files go.
func (j *job) resolveFailed() {
	if err := j.applier.Resolve(); err != nil {
		j.log.Error("cannot remove the journal of a failed apply", "err", err)
	}
}

func (j *job) setStatus(f func(s *JobStatus)) {
	j.mu.Lock()
	defer j.mu.Unlock()
	f(&j.status)
}

// offer sets the content a source serves: the files of its newest
// generation and of the one before (a target still working on that one, and
// the usual delta base). Older content stays in the store for rollback but
// is no longer served; a target asking for it gets the newest announcement.
func (j *job) offer(cur, prev index.Index) {
	serving, refs := servedOf(cur)
	served := map[index.Hash]int64{}
	for it := range prev.Items() {
		if it.Kind != index.KindFile {
			continue
		}
		if refs.count(serving, it.Hash) == 0 { // not in cur
			serving.set(it.Hash, it.Size)
			refs.notCur[it.Hash] = struct{}{}
			served[it.Hash] = it.Size
		}
	}
	j.mu.Lock()
	defer j.mu.Unlock()
	j.serving.release()
	j.serving, j.servedRefs, j.servedPrev = serving, refs, served
}

// rollbackTo is the generation a rollback without --to goes to
// (core.RollbackTo): the newest good one before latest.
func (j *job) rollbackTo(latest uint64) (uint64, bool, error) {
	infos, err := j.a.store.Generations(j.cfg.Name)
	if err != nil {
		return 0, false, err
	}
	gens := make([]core.Gen, len(infos))
	for i, gi := range infos {
		gens[i] = core.Gen{Number: gi.Number, Good: gi.State == store.StateGood}
	}
	to, ok := core.RollbackTo(gens, latest)
	return to, ok, nil
}

func (j *job) rollback(ctx context.Context, to uint64, hold bool) (uint64, error) {
	switch {
	case !j.isSource && !hold:
		return 0, fmt.Errorf("%w: job %q is a push target of %s, which would restore its version at once; "+
			"run `pbxsync rollback` on %s to roll the whole farm back, or `pbxsync rollback --hold` here to hold this target "+
			"at the generation until `pbxsync resume`", ErrTargetRollback, j.cfg.Name, j.cfg.Source, j.cfg.Source)
	case j.isSource && hold:
		return 0, fmt.Errorf("job %q: --hold is for push targets; this node is the job's source (a rollback here goes to every target)", j.cfg.Name)
	}
	if j.latest == nil {
		return 0, errors.New("no generation to roll back from")
	}
	if to == 0 {
		var ok bool
		var err error
		if to, ok, err = j.rollbackTo(j.latest.Number); err != nil {
			return 0, err
		}
		if !ok {
			return 0, errors.New("no earlier good generation to roll back to")
		}
	}
	g, err := j.a.store.Generation(j.cfg.Name, to)
	if err != nil {
		return 0, err
	}
	for it := range g.Index.Items() {
		if it.Kind != index.KindFile {
			continue
		}
		if err := j.a.store.Verify(ctx, it.Hash); err != nil {
			return 0, fmt.Errorf("refusing to roll back to generation %d: stored content of %s is damaged: %w", to, it.Path, err)
		}
	}
	if !j.isSource {
		if err := j.holdAt(ctx, g); err != nil {
			return 0, err
		}
		return to, nil
	}
	reason := fmt.Sprintf("rollback to generation %d", to)
	prev, prevState := j.latest.Number, j.latest.State
	if _, err := j.applyIndex(ctx, prev, g.Index, true); err != nil {
		return 0, fmt.Errorf("roll back to generation %d: %w", to, err)
	}
	if err := j.newSourceGeneration(ctx, j.states.Index(), reason); err != nil {
		return 0, err
	}
	if prevState == store.StateGood { // a bad one keeps saying why it was bad
		if err := j.a.store.SetState(j.cfg.Name, prev, store.StateRolledBack, reason); err != nil {
			j.log.Warn("cannot mark the replaced generation", "generation", prev, "err", err)
		}
	}
	j.log.Info("rolled back", "to", to, "new_generation", j.latest.Number)
	j.window.forced = j.latest.Number // an operator's rollback goes out at once, window or not
	j.announce(true)
	j.renderLogged(ctx, j.latest.Index, j.latest.Changed)
	return j.latest.Number, nil
}
