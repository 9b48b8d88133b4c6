package syncer

import (
	"context"
	"fmt"
	"sort"
	"time"

	"pbxsync/internal/wire"
	"pbxsync/remotemon"
)

// JobStatus is one job's line in `pbxsync status`.
type JobStatus struct {
	Name          string    `json:"name"`
	Type          string    `json:"type"`
	Mode          string    `json:"mode"`
	Role          string    `json:"role"` // source or target
	Source        string    `json:"source,omitempty"`
	Path          string    `json:"path"`
	Generation    uint64    `json:"generation"`
	State         string    `json:"state"`
	Held          string    `json:"held,omitempty"` // "held by operator at N" (rollback --hold on a push target)
	LastError     string    `json:"last_error"`
	LastChange    time.Time `json:"last_change,omitzero"`
	BytesSent     uint64    `json:"bytes_sent"`     // content bytes on the wire
	BytesReceived uint64    `json:"bytes_received"` // content bytes on the wire
	// LogicalBytesSent and LogicalBytesReceived count the content those
	// wire bytes stood for (file sizes): their ratio is what deltas and
	// compression saved.
	LogicalBytesSent     uint64         `json:"logical_bytes_sent"`
	LogicalBytesReceived uint64         `json:"logical_bytes_received"`
	Fetches              uint64         `json:"fetches"`           // contents fetched over transfer streams (not inline)
	FetchStreams         uint64         `json:"fetch_streams"`     // transfer streams they took (many small contents share one)
	Prefetched           uint64         `json:"prefetched"`        // of the fetches, contents a source offered before it announced them (prefetch.go)
	Applied              uint64         `json:"applied"`           // generations applied and good here
	RolledBack           uint64         `json:"rolled_back"`       // generations rolled back here
	Latency              *Histogram     `json:"latency,omitempty"` // change at the origin → applied here
	Targets              []TargetStatus `json:"targets,omitempty"`
	Rollout              string         `json:"rollout,omitempty"` // source: how far the newest generation got
	// Unreadable lists the paths of the tree the agent cannot read ("path:
	// reason"); they keep their last synced content.
	Unreadable []string `json:"unreadable,omitempty"`
	// Refused lists paths this node does not sync because of their names
	// (control characters) or, on a target, paths a source announced that
	// the job's own filters exclude ("path: reason").
	Refused []string `json:"refused,omitempty"`
	// Writing lists the files some process has open for writing ("path:
	// open for writing since TIME"): the job syncs each once it is closed
	// (or not written for a minute, or after 5 minutes of waiting), and
	// keeps its last synced content until then.
	Writing []string `json:"writing,omitempty"`
	// Progress, on a target, is how far it got with a generation that
	// has taken more than a second so far (nil otherwise).
	Progress *Progress `json:"progress,omitempty"`
	// Window, on a source whose changes wait for a sync window, says so:
	// "waiting for window 02:00, 3 generations pending".
	Window string `json:"window,omitempty"`
	// Conflicts, on a mesh member, counts the job's conflict records
	// (`pbxsync conflicts`, /api/v1/jobs/{job}/conflicts).
	Conflicts int `json:"conflicts,omitempty"`
	// CheckRetries, on a mesh member whose checks failed on the content
	// they had before a member's version too (state "checks-failing"),
	// counts the times it ran them again on its content.
	CheckRetries uint64 `json:"check_retries,omitempty"`
}

// TargetStatus is what a source knows of one target of a job.
type TargetStatus struct {
	Name       string `json:"name"`
	Version    uint64 `json:"version"`    // the source generation it answered for
	Generation uint64 `json:"generation"` // its own generation number
	State      string `json:"state"`
	Reason     string `json:"reason,omitempty"`
	Lag        uint64 `json:"lag"` // generations behind the source's newest
	// Slow is set while the target's peer takes nothing from its control
	// stream (it is disconnected if that lasts); SlowSince says since when.
	Slow      bool      `json:"slow,omitempty"`
	SlowSince time.Time `json:"slow_since,omitzero"`
	// Progress is what the target last reported of a generation that
	// takes it more than a second (nil when it is not applying one).
	Progress *Progress `json:"progress,omitempty"`
	// Via is the relay of the target's site the source reached it
	// through, empty when directly (see setVia).
	Via string `json:"via,omitempty"`
}

func (s *JobStatus) setTarget(peer string, r *wire.Result) {
	ts := TargetStatus{Name: peer, Version: r.Version, Generation: r.Generation, State: r.State, Reason: r.Reason}
	if r.Progress != nil {
		ts.Progress = progressFromWire(r.Version, r.Progress, time.Now())
	}
	for i := range s.Targets {
		if s.Targets[i].Name == peer {
			ts.Via = s.Targets[i].Via
			s.Targets[i] = ts
			return
		}
	}
	s.Targets = append(s.Targets, ts)
	sort.Slice(s.Targets, func(i, k int) bool { return s.Targets[i].Name < s.Targets[k].Name })
}

// setVia records the relay the source reaches target peer through (""
// directly); a target without a row yet gets one, "announced".
func (s *JobStatus) setVia(peer, via string) {
	for i := range s.Targets {
		if s.Targets[i].Name == peer {
			s.Targets[i].Via = via
			return
		}
	}
	s.Targets = append(s.Targets, TargetStatus{Name: peer, State: "announced", Via: via})
	sort.Slice(s.Targets, func(i, k int) bool { return s.Targets[i].Name < s.Targets[k].Name })
}

// PeerDownState is the state of a target row while its peer is down.
const PeerDownState = "down"

// markPeerDown turns the status row of a target whose peer went down into
// "down since T", so that a killed target never keeps showing its last
// answer; the row shows the target's answer again once it is back and
// answers.
func (j *job) markPeerDown(e event) {
	if !j.isSource || e.peerUp || !contains(j.cfg.Targets, e.peer) {
		return
	}
	at := e.at
	if at.IsZero() {
		at = time.Now()
	}
	j.setStatus(func(s *JobStatus) {
		for i := range s.Targets {
			if s.Targets[i].Name == e.peer {
				s.Targets[i].State = PeerDownState
				s.Targets[i].Reason = "down since " + at.UTC().Format(time.RFC3339)
				s.Targets[i].Progress = nil
				return
			}
		}
		s.setTarget(e.peer, &wire.Result{State: PeerDownState, Reason: "down since " + at.UTC().Format(time.RFC3339)})
	})
}

// Status is the answer to `pbxsync status`.
type Status struct {
	Node   string                 `json:"node"`
	ID     string                 `json:"id"`
	Uptime float64                `json:"uptime_s"`
	Peers  []remotemon.PeerStatus `json:"peers"`
	Jobs   []JobStatus            `json:"jobs"`
	// Asterisk: the log that log checks read and the last actions per
	// job, when the AfterApply reports them (AsteriskActions does).
	Asterisk *AsteriskStatus `json:"asterisk,omitempty"`
}

// asteriskReporter is an AfterApply that reports its Asterisk side.
type asteriskReporter interface{ AsteriskStatus() *AsteriskStatus }

// Status returns the agent's current status.
func (a *Agent) Status() Status {
	st := Status{Node: a.node, ID: a.ident.ID.String(), Uptime: time.Since(a.started).Seconds(), Peers: a.mon.Status()}
	slow := map[string]time.Time{}
	for _, p := range st.Peers {
		if p.Slow {
			slow[p.Name] = p.SlowSince
		}
	}
	for _, j := range a.allJobs() {
		j.mu.Lock()
		js := j.status
		js.Targets = append([]TargetStatus(nil), j.status.Targets...)
		js.Latency = j.status.Latency.clone()
		j.mu.Unlock()
		for i := range js.Targets {
			if since, ok := slow[js.Targets[i].Name]; ok {
				js.Targets[i].Slow, js.Targets[i].SlowSince = true, since
			}
		}
		if js.Role == "source" {
			js.Rollout = rollout(&js, j.cfg.Targets, j.cfg.Order)
		}
		st.Jobs = append(st.Jobs, js)
	}
	if r, ok := a.after.(asteriskReporter); ok {
		st.Asterisk = r.AsteriskStatus()
	}
	return st
}

// Rollback asks job's loop to roll back to generation to (0: the previous
// good one) and waits for the outcome. On a push source the rollback
// becomes a new generation that goes to every target.
//
// On a push target only hold may be set: the target is rolled back and held
// at that generation, taking no new one until Resume.
func (a *Agent) Rollback(ctx context.Context, jobName string, to uint64, hold bool) (uint64, error) {
	j := a.job(jobName)
	if j == nil {
		return 0, fmt.Errorf("no job %q", jobName)
	}
	req := &rollbackReq{to: to, hold: hold, reply: make(chan rollbackResult, 1)}
	select {
	case j.inbox <- event{rollback: req}:
	case <-ctx.Done():
		return 0, ctx.Err()
	}
	select {
	case r := <-req.reply:
		return r.generation, r.err
	case <-ctx.Done():
		return 0, ctx.Err()
	}
}

// stateChecksFailing is the state of a job whose checks failed on the
// content it held before a version too: the node's check or Asterisk is at
// fault (a mesh member, meshchecks.go; a push target, core.ChecksFailHere).
const stateChecksFailing = "checks-failing"

// stateWaitingForRoom is the state of a push target whose file system has
// no room for the generation its source announced: it wrote nothing and
// waits (spacewait.go); last_error says what it needs and what is free.
// Not "waiting": that is a target's before its first generation, which
// is healthy.
const stateWaitingForRoom = "no-room"

// Healthy reports nil when every job runs without an error and without
// checks that fail whatever the content (checks-failing), none waits for
// room on a full disk (no-room), and Options.Health, if set, passes.
func (a *Agent) Healthy(ctx context.Context) error {
	for _, j := range a.allJobs() {
		j.mu.Lock()
		state, msg := j.status.State, j.status.LastError
		unreadable := unreadableError(j.status.Unreadable)
		j.mu.Unlock()
		if state == "error" || state == stateChecksFailing || state == stateWaitingForRoom {
			// checks-failing: the node's checks fail on the content it
			// holds too (its check or its Asterisk is broken); no-room:
			// its disk has no room for the farm's newest generation
			return fmt.Errorf("job %s: %s", j.cfg.Name, msg)
		}
		if unreadable != nil {
			return fmt.Errorf("job %s: %w", j.cfg.Name, unreadable)
		}
	}
	if a.health != nil {
		return a.health(ctx)
	}
	return nil
}

// rollout fills each target's lag and describes how far the source's newest
// generation got: "2/3 targets have generation 7", and where a rolling
// rollout stopped.
func rollout(js *JobStatus, targets []string, order string) string {
	done, stopped := 0, ""
	for i := range js.Targets {
		t := &js.Targets[i]
		if js.Generation > t.Version {
			t.Lag = js.Generation - t.Version
		}
		if t.Version == js.Generation && t.State == "good" {
			done++
		}
		if t.Version == js.Generation && t.State == "bad" && stopped == "" {
			stopped = t.Name
		}
	}
	s := fmt.Sprintf("%d/%d targets have generation %d", done, len(targets), js.Generation)
	if stopped != "" {
		if order == "rolling" || order == "rolling-sites" {
			s += fmt.Sprintf("; rollout stopped at %s, which rejected it", stopped)
		} else {
			s += fmt.Sprintf("; %s rejected it", stopped)
		}
	}
	return s
}
