package syncer

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"path/filepath"
	"sort"
	"sync"
	"time"

	"pbxsync/internal/config"
	"pbxsync/internal/identity"
	"pbxsync/internal/store"
	"pbxsync/internal/wire"
	"pbxsync/remotemon"
)

// Options configure an Agent.
type Options struct {
	Config     *config.Config
	Identity   *identity.Identity
	Log        *slog.Logger
	Version    string     // software version, sent in Hello
	AfterApply AfterApply // actions and checks after an apply; default ShellChecks
	// Health, when set, is part of Healthy: e.g. whether the local
	// Asterisk answers.
	Health func(ctx context.Context) error
	// Asterisk, when set, describes the local Asterisk for the state this
	// node publishes to its peers (version, uptime, channels, ...).
	Asterisk func(ctx context.Context) (AsteriskInfo, error)
	// StallAfter is how long a peer may take nothing from its control
	// stream before it is disconnected; 0: remotemon.DefaultStallAfter.
	StallAfter time.Duration
	// Clock, when set, is the agent's clock for sync windows (tests
	// set it); nil: time.Now.
	Clock func() time.Time
	// AnnouncePartBytes is about the most bytes of items one message of
	// an announcement carries before it is sent in parts; 0:
	// 512 KiB (announcePartBytes). Tests make it small.
	AnnouncePartBytes int
	// RelayPatience is how long the targets behind a relay may take to
	// answer a version the relay answered for before the origin passes
	// the relay over as withholding (withhold.go); 0: 30 s.
	RelayPatience time.Duration
	// ChecksRetry is how long a mesh member whose checks fail on the
	// content they had before a member's version too waits before it runs
	// them again the first time (each wait doubles, up to 5 minutes); 0:
	// 5 s (core.ChecksRetryFirst). Tests make it short.
	ChecksRetry time.Duration
	// SpillIdle is how long a job's scan state goes unchanged before it
	// is moved out of memory (spill.go), and how long a job goes without
	// an event before it lets go of its newest index (park.go); 0: 10 s.
	// Tests make it short.
	SpillIdle time.Duration
	// ParkMin is the fewest items a newest index has for it to be let go
	// of while idle (park.go); 0: 10,000. Tests make it small.
	ParkMin int
	// NoOffers: a source offers nothing while it builds a job's first
	// generation (offer.go); tests of the announcement's own fetch set it.
	NoOffers bool
	// NoInline: a source carries no content inside its announcements
	// (buildAnnounce); tests of the fetch of changed files set it.
	NoInline bool
	// Memory, when set, is told before a job reads a parked index back
	// into memory (park.go) or copies its index for a spare (spare.go),
	// so that the process's garbage collector does not run over and over
	// while that memory comes; nil: nothing is told (the demo's agents
	// share one process).
	Memory MemoryBudget
}

// MemoryBudget is what an Agent tells about memory it is about to take
// and keep: pbxsync run's memory limit implements it.
type MemoryBudget interface {
	// Grow says that about bytes more of heap are about to be allocated
	// and will stay live; done says they are.
	Grow(bytes int64) (done func())
}

// AsteriskInfo is what a node tells its peers about its Asterisk.
type AsteriskInfo struct {
	Version     string
	Uptime      time.Duration
	LastReload  time.Time
	Channels    int
	FullyBooted bool
}

// Agent runs every job of one node.
type Agent struct {
	log         *slog.Logger
	umask       fs.FileMode // the process's umask, when umaskKnown (see Applier.Umask)
	umaskKnown  bool
	partBytes   int           // see Options.AnnouncePartBytes
	noOffers    bool          // see Options.NoOffers
	noInline    bool          // see Options.NoInline
	patience    time.Duration // see Options.RelayPatience
	checksRetry time.Duration // see Options.ChecksRetry
	spillIdle   time.Duration // see Options.SpillIdle
	parkMin     int           // see Options.ParkMin
	memory      MemoryBudget  // see Options.Memory; nil: none
	node        string
	ident       *identity.Identity
	store       *store.Store
	mon         *remotemon.Monitor
	hooks       *remotemon.HookRunner
	peerUp      chan struct{} // wakes the state publisher

	astCache   *AsteriskInfo // last answer of astInfo, under mu
	astCacheAt time.Time
	after      AfterApply
	health     func(ctx context.Context) error
	astInfo    func(ctx context.Context) (AsteriskInfo, error)
	started    time.Time
	clock      func() time.Time // Options.Clock

	reload sync.Mutex // one Reload at a time; taken before mu, never under it
	mu     sync.Mutex
	cfg    *config.Config
	jobs   map[string]*job
	wg     sync.WaitGroup
	ctx    context.Context
}

// New opens the store, binds the QUIC socket and prepares every job. Run
// starts them.
func New(opts Options) (*Agent, error) {
	cfg := opts.Config
	log := opts.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	st, err := store.Open(filepath.Join(cfg.Node.DataDir, "store"), log)
	if err != nil {
		return nil, fmt.Errorf("open store in %s: %w", cfg.Node.DataDir, err)
	}
	a := &Agent{log: log, node: cfg.Node.Name, ident: opts.Identity, store: st, after: opts.AfterApply, health: opts.Health, astInfo: opts.Asterisk, cfg: cfg, jobs: map[string]*job{}, started: time.Now(), peerUp: make(chan struct{}, 1), partBytes: opts.AnnouncePartBytes, clock: opts.Clock, noOffers: opts.NoOffers, noInline: opts.NoInline, checksRetry: opts.ChecksRetry, spillIdle: opts.SpillIdle, parkMin: opts.ParkMin, memory: opts.Memory}
	a.umask, a.umaskKnown = processUmask()
	if a.patience = opts.RelayPatience; a.patience <= 0 {
		a.patience = defaultRelayPatience
	}
	if a.partBytes <= 0 {
		a.partBytes = announcePartBytes
	}
	if a.after == nil {
		a.after = ShellChecks{}
	}
	mon, err := remotemon.New(remotemon.Options{
		Node: cfg.Node.Name, Listen: cfg.Node.Listen, Identity: opts.Identity, Peers: peersOf(cfg),
		Handler: a, Log: log, Agent: opts.Version, StallAfter: opts.StallAfter,
	})
	if err != nil {
		st.Close()
		return nil, err
	}
	a.mon = mon
	a.hooks = remotemon.NewHookRunner(hooksOf(cfg), log)
	for i := range cfg.Jobs {
		j, err := a.newJob(cfg.Jobs[i])
		if err != nil {
			st.Close()
			return nil, err
		}
		a.jobs[j.cfg.Name] = j
	}
	return a, nil
}

func peersOf(cfg *config.Config) []remotemon.Peer {
	out := make([]remotemon.Peer, 0, len(cfg.Peers))
	for _, p := range cfg.Peers {
		out = append(out, remotemon.Peer{Name: p.Name, Address: p.Address, ID: p.ID})
	}
	return out
}

// Store returns the agent's store.
func (a *Agent) Store() *store.Store { return a.store }

// Run runs the transport and every job until ctx is done, then waits for
// the jobs to finish what they are doing.
func (a *Agent) Run(ctx context.Context) error {
	a.mu.Lock()
	a.ctx = ctx
	for _, j := range a.jobs {
		a.startJobLocked(ctx, j)
	}
	a.mu.Unlock()
	monDone := make(chan error, 1)
	go func() { monDone <- a.mon.Run(ctx) }()
	go a.gcLoop(ctx)
	go a.backupLoop(ctx)
	go a.publishLoop(ctx)
	a.wg.Add(1)
	go func() { defer a.wg.Done(); a.releaseMappedLoop(ctx) }()
	a.hooksSnapshot().Start(ctx)
	<-ctx.Done()
	a.wg.Wait()
	a.hooksSnapshot().Wait()
	err := <-monDone
	a.store.Close()
	return err
}

func (a *Agent) startJobLocked(ctx context.Context, j *job) {
	jctx, cancel := context.WithCancel(ctx)
	j.cancel = cancel
	a.wg.Add(1)
	go func() {
		defer a.wg.Done()
		defer close(j.done)
		// A job that fails (its root vanished, the disk is full, the
		// database is away) starts again after a growing pause; the other
		// jobs and the node go on, and status and /healthz show the error.
		backoff := time.Second
		for {
			started := time.Now()
			err := j.run(jctx)
			if jctx.Err() != nil {
				return
			}
			if err == nil {
				err = errors.New("job loop ended")
			}
			if time.Since(started) > 5*time.Minute {
				backoff = time.Second
			}
			if isNoSpace(err) {
				a.log.Error("job stopped: a file system it writes is full; starting it again once there is room", "job", j.cfg.Name, "err", err,
					"root", j.cfg.Path, "data_dir", a.cfgSnapshot().Node.DataDir)
			} else {
				a.log.Error("job stopped; starting it again", "job", j.cfg.Name, "err", err, "in", backoff)
			}
			j.setError(err.Error())
			if !a.waitToRestart(jctx, j, err, backoff) {
				return
			}
			backoff = min(backoff*2, time.Minute)
		}
	}()
}

// Reload applies a new configuration without dropping connections: peers
// are updated in place, new jobs start, removed jobs stop, and jobs whose
// settings changed restart.
func (a *Agent) Reload(cfg *config.Config) error {
	if cfg.Node.Name != a.node || cfg.Node.Listen != a.cfgSnapshot().Node.Listen || cfg.Node.DataDir != a.cfgSnapshot().Node.DataDir {
		return errors.New("node name, listen and data_dir cannot change on reload; restart the agent")
	}
	newJobs := map[string]*job{}
	for i := range cfg.Jobs {
		j, err := a.newJob(cfg.Jobs[i])
		if err != nil {
			return err
		}
		newJobs[j.cfg.Name] = j
	}
	a.mon.SetPeers(peersOf(cfg))
	hooks := remotemon.NewHookRunner(hooksOf(cfg), a.log)
	for _, p := range a.mon.Status() {
		hooks.PeerChanged(p.Name, p.Connected)
	}
	a.reload.Lock()
	defer a.reload.Unlock()
	// The jobs to replace leave the table first, then are stopped without
	// mu held: a stopping job may still be in a step that reads the
	// configuration (cfgSnapshot), and waiting for it under mu would never
	// end. Until the new ones start, a message for such a job is answered
	// as for a job this node does not have.
	a.mu.Lock()
	var stop, kept []*job
	for name, old := range a.jobs {
		nj, keep := newJobs[name]
		if keep && sameJob(old.cfg, nj.cfg) && !templatesStale(a.cfg.Node, cfg.Node, nj.cfg) {
			newJobs[name] = old
			kept = append(kept, old)
			continue
		}
		delete(a.jobs, name)
		stop = append(stop, old)
	}
	a.mu.Unlock()
	for _, old := range stop {
		old.cancel()
		<-old.done
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	for name, j := range newJobs {
		if a.jobs[name] != j && a.ctx != nil {
			a.startJobLocked(a.ctx, j)
		}
	}
	a.jobs = newJobs
	a.cfg = cfg
	if a.ctx != nil {
		a.hooks.Stop()
		hooks.Start(a.ctx)
	}
	a.hooks = hooks
	for _, j := range kept {
		switch {
		case j.cfg.Mode == config.ModeMesh:
			// a mesh member whose checks failed on everything runs them
			// again now: the admin may have fixed what they run
			j.post(event{do: func(ctx context.Context) { j.meshRetryChecks(ctx, true) }})
		case !j.isSource && j.kind == nil:
			// a push target whose checks failed on the content put back
			// too asks for the newest generation again, for the same reason
			j.post(event{do: func(context.Context) { j.retryChecksFailHere() }})
		}
	}
	a.log.Info("configuration reloaded", "file", cfg.File, "jobs", len(newJobs), "peers", len(cfg.Peers))
	return nil
}

func sameJob(a, b config.Job) bool { return fmt.Sprintf("%#v", a) == fmt.Sprintf("%#v", b) }

func (a *Agent) cfgSnapshot() *config.Config {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.cfg
}

func (a *Agent) job(name string) *job {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.jobs[name]
}

func (a *Agent) allJobs() []*job {
	a.mu.Lock()
	defer a.mu.Unlock()
	out := make([]*job, 0, len(a.jobs))
	for _, j := range a.jobs {
		out = append(out, j)
	}
	sort.Slice(out, func(i, k int) bool { return out[i].cfg.Name < out[k].cfg.Name })
	return out
}

// HandleMessage implements remotemon.Handler: announcements and results go
// to their job's loop.
func (a *Agent) HandleMessage(peer string, m wire.Message) {
	var name string
	switch m := m.(type) {
	case *wire.Announce:
		name = m.Job
	case *wire.Result:
		name = m.Job
	case *wire.RowsAnnounce:
		name = m.Job
	case *wire.RowsHave:
		name = m.Job
	case *wire.Relay:
		name = m.Job
	case *wire.State:
		return
	default:
		a.log.Debug("ignoring message", "peer", peer, "type", m.Type().String())
		return
	}
	j := a.job(name)
	if j == nil {
		a.log.Warn("peer sent a message for a job this node does not have", "peer", peer, "job", name, "type", m.Type().String())
		return
	}
	if an, ok := m.(*wire.Announce); ok && j.repeatOfTaken(an) {
		return
	}
	j.post(event{peer: peer, msg: m})
}

// HandleStream implements remotemon.Handler: transfer requests, and a
// source's offers (prefetch.go) and wakes (wakehint.go).
func (a *Agent) HandleStream(ctx context.Context, peer string, first wire.Message, s *remotemon.Stream) {
	if w, ok := first.(*wire.Wake); ok {
		if j := a.job(w.Job); j != nil {
			j.takeWake(peer)
		}
		s.Close()
		return
	}
	if o, ok := first.(*wire.Offer); ok {
		if j := a.job(o.Job); j != nil {
			j.takeOffers(peer, o, s)
			return
		}
		s.Abort()
		return
	}
	get, ok := first.(*wire.Get)
	if !ok {
		s.WriteMessage(&wire.Error{Message: "expected Get"})
		s.Abort()
		return
	}
	j := a.job(get.Job)
	if j == nil {
		s.WriteMessage(&wire.Error{Message: "no job " + get.Job})
		s.Close()
		return
	}
	if j.kind != nil {
		j.kind.serveGet(ctx, peer, get, s)
		return
	}
	j.serveGet(ctx, peer, get, s)
}

// PeerChanged implements remotemon.Handler.
func (a *Agent) PeerChanged(peer string, up bool) {
	a.hooksSnapshot().PeerChanged(peer, up)
	if up {
		select {
		case a.peerUp <- struct{}{}:
		default:
		}
	}
	now := time.Now()
	for _, j := range a.allJobs() {
		j.post(event{peer: peer, peerUp: up, peerChange: true, at: now})
	}
}

// gcLoop trims every job's store to its keep setting now and then.
func (a *Agent) gcLoop(ctx context.Context) {
	t := time.NewTicker(10 * time.Minute)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		keep := map[string]int{}
		for _, j := range a.allJobs() {
			keep[j.cfg.Name] = j.cfg.Keep
		}
		if err := a.store.GC(ctx, keep); err != nil {
			a.log.Warn("store GC failed", "err", err)
		}
	}
}

func (a *Agent) hooksSnapshot() *remotemon.HookRunner {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.hooks
}

func hooksOf(cfg *config.Config) []remotemon.Hook {
	var out []remotemon.Hook
	for _, h := range cfg.OnPeerDown {
		out = append(out, remotemon.Hook{Peer: h.Peer, Grace: h.Grace, Command: h.Command, Timeout: h.Timeout})
	}
	for _, h := range cfg.OnPeerUp {
		out = append(out, remotemon.Hook{Peer: h.Peer, Up: true, Grace: h.Grace, Command: h.Command, Timeout: h.Timeout})
	}
	return out
}
