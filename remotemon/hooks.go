package remotemon

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"pbxsync/internal/shell"
)

// Hook is an [[on_peer_down]] or [[on_peer_up]] command.
type Hook struct {
	Peer    string
	Up      bool          // true: on_peer_up, false: on_peer_down
	Grace   time.Duration // the new state must last this long before the command runs
	Command string
	Timeout time.Duration
}

// HookRunner runs each hook once per transition of its peer: a down hook
// when the peer has been down for its grace period, an up hook when it has
// been up for its grace period. A transition that reverts within the grace
// period runs nothing. A peer that is not up when the runner starts counts
// as having gone down at that moment, so a standby that starts while its
// primary is dead still takes over. Commands get PBXSYNC_PEER and
// PBXSYNC_EVENT (up or down) in their environment.
type HookRunner struct {
	log   *slog.Logger
	hooks []Hook

	mu      sync.Mutex
	ctx     context.Context
	stop    context.CancelFunc
	up      map[string]bool
	timers  map[int]*time.Timer
	fired   map[int]bool // hook i already ran for the current state of its peer
	running sync.WaitGroup
}

// NewHookRunner returns a runner for hooks; Start arms it.
func NewHookRunner(hooks []Hook, log *slog.Logger) *HookRunner {
	return &HookRunner{log: log, hooks: hooks, up: map[string]bool{}, timers: map[int]*time.Timer{}, fired: map[int]bool{}}
}

// Start arms the down hooks of every peer that is not up yet. Commands run
// under ctx; Wait waits for the running ones after ctx ends.
func (h *HookRunner) Start(ctx context.Context) {
	h.mu.Lock()
	defer h.mu.Unlock()
	ctx, h.stop = context.WithCancel(ctx)
	h.ctx = ctx
	for i, hk := range h.hooks {
		if !hk.Up && !h.up[hk.Peer] {
			h.armLocked(i)
		}
	}
	context.AfterFunc(ctx, func() {
		h.mu.Lock()
		defer h.mu.Unlock()
		for i, t := range h.timers {
			t.Stop()
			delete(h.timers, i)
		}
	})
}

// Stop disarms every pending hook and cancels running commands (a config
// reload replaces the runner).
func (h *HookRunner) Stop() {
	h.mu.Lock()
	stop := h.stop
	h.mu.Unlock()
	if stop != nil {
		stop()
	}
}

// Wait blocks until no hook command is running.
func (h *HookRunner) Wait() { h.running.Wait() }

// PeerChanged records a transition of peer and arms or disarms its hooks.
func (h *HookRunner) PeerChanged(peer string, up bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if was, known := h.up[peer]; known && was == up {
		return
	}
	h.up[peer] = up
	for i, hk := range h.hooks {
		if hk.Peer != peer {
			continue
		}
		if t := h.timers[i]; t != nil {
			t.Stop()
			delete(h.timers, i)
		}
		if hk.Up == up {
			h.fired[i] = false
			if h.ctx != nil {
				h.armLocked(i)
			}
		}
	}
}

func (h *HookRunner) armLocked(i int) {
	if h.ctx.Err() != nil || h.fired[i] {
		return
	}
	hk := h.hooks[i]
	h.timers[i] = time.AfterFunc(hk.Grace, func() {
		h.mu.Lock()
		if h.timers[i] == nil || h.up[hk.Peer] != hk.Up || h.fired[i] {
			h.mu.Unlock()
			return
		}
		delete(h.timers, i)
		h.fired[i] = true
		ctx := h.ctx
		h.running.Add(1)
		h.mu.Unlock()
		defer h.running.Done()
		h.run(ctx, hk)
	})
}

func (h *HookRunner) run(ctx context.Context, hk Hook) {
	event := "down"
	if hk.Up {
		event = "up"
	}
	h.log.Info("running peer hook", "peer", hk.Peer, "event", event, "command", hk.Command)
	res, err := shell.Run(ctx, "/", hk.Command, []string{"PBXSYNC_PEER=" + hk.Peer, "PBXSYNC_EVENT=" + event}, hk.Timeout)
	if err != nil {
		h.log.Error("peer hook failed", "peer", hk.Peer, "event", event, "err", err, "took", res.Duration.Round(time.Millisecond))
		return
	}
	h.log.Info("peer hook done", "peer", hk.Peer, "event", event, "took", res.Duration.Round(time.Millisecond))
}
