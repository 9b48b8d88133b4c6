package syncer

import (
	"fmt"
	"time"

	"pbxsync/internal/config"
	"pbxsync/internal/window"
	"pbxsync/syncer/core"
)

// Sync windows ([[job]] window, internal/window): a source records every
// change as a generation at once, but announces to its targets only while
// one of the job's windows is open (in its local time): outside them the
// newest generation waits, and when a window opens the targets get the
// newest state (a files job announces only its newest generation; a
// postgres job sends its row changes in order, as always). `pbxsync sync
// --now` sends the newest generation at once, window or not; the changes
// after it wait again. The status line of a waiting job says "waiting for
// window 02:00, 3 generations pending". A target applies what it is sent:
// the windows that count are the source's.

// windowVerdict is the pure part of the gate: whether a source announces
// now, and when not, its status line. forced is the newest generation
// `sync --now` let out; pending counts the generations its targets lack.
func windowVerdict(ws window.Set, now time.Time, latest, forced uint64, pending int) (send bool, waiting string) {
	if ws.Open(now) || (forced != 0 && latest <= forced) {
		return true, ""
	}
	_, w, _ := ws.Next(now)
	if pending <= 0 {
		return false, ""
	}
	return false, window.Waiting(w, pending)
}

// pendingSince counts the generations after the oldest one a target is
// known to hold (held: each target's, as far as known), or after base
// when none is known.
func pendingSince(latest uint64, held []uint64, base uint64) int {
	if len(held) > 0 {
		base = held[0]
		for _, h := range held[1:] {
			base = min(base, h)
		}
	}
	if latest <= base {
		return 0
	}
	return int(latest - base)
}

// windowGate is a source job's window state.
type windowGate struct {
	set    window.Set
	forced uint64 // sync --now: generations up to this one go out at once
	// base is the newest generation announced since the agent started
	// (or, before any, the newest at start): the count of pending
	// generations starts there while no target has answered.
	base uint64
}

// now is the agent's clock (Options.Clock; tests set it).
func (a *Agent) now() time.Time {
	if a.clock != nil {
		return a.clock()
	}
	return time.Now()
}

// windowAllows reports whether the source may announce generation latest
// now; held is what each target is known to hold. It keeps the job's
// status line ("waiting for window …") up to date.
func (j *job) windowAllows(latest uint64, held []uint64) bool {
	if len(j.window.set) == 0 {
		return true
	}
	send, waiting := windowVerdict(j.window.set, j.a.now(), latest, j.window.forced, pendingSince(latest, held, j.window.base))
	if send {
		j.window.base = max(j.window.base, latest)
	}
	j.mu.Lock()
	j.status.Window = waiting
	j.mu.Unlock()
	return send
}

// heldByTargets is what each target of a files job last said it holds.
func (j *job) heldByTargets() []uint64 {
	return core.Holding(j.targetViews())
}

// heldByTargets is what each target of a postgres job is known to hold.
func (p *pgJob) heldByTargets() []uint64 {
	var out []uint64
	for _, t := range p.targets {
		if t.Known {
			out = append(out, t.Have)
		}
	}
	return out
}

// newWindowGate reads a job's windows (checked by config already).
func newWindowGate(c config.Job) (windowGate, error) {
	ws, err := window.ParseAll(c.Windows)
	if err != nil {
		return windowGate{}, fmt.Errorf("job %q: %w", c.Name, err)
	}
	return windowGate{set: ws}, nil
}
