package syncer

import (
	"context"
	"reflect"
	"time"

	"pbxsync/hostmon"
	"pbxsync/internal/wire"
)

// Publishing bounds: a changed state goes out at most every publishMin; an
// unchanged one is repeated every publishMax so that late joiners and
// load/space figures stay fresh. A change of the jobs' lines alone (a new
// generation, an apply) goes out once they held for jobsSettle: a change
// then costs its announcement and result and not also a State each way in
// the same moment, and a burst of changes one State.
const (
	publishMin = 500 * time.Millisecond
	publishMax = 15 * time.Second
	jobsSettle = 2 * time.Second
)

// asteriskInfoEvery bounds how often the local Asterisk is asked for its
// details (four AMI actions); health itself is checked on every publish.
const asteriskInfoEvery = 5 * time.Second

// asteriskInfo returns the local Asterisk's details, asking it at most every
// asteriskInfoEvery; nil when unknown.
func (a *Agent) asteriskInfo(ctx context.Context) *AsteriskInfo {
	if a.astInfo == nil {
		return nil
	}
	a.mu.Lock()
	cached, at := a.astCache, a.astCacheAt
	a.mu.Unlock()
	if cached != nil && time.Since(at) < asteriskInfoEvery {
		return cached
	}
	info, err := a.astInfo(ctx)
	var out *AsteriskInfo
	if err == nil {
		out = &info
	}
	a.mu.Lock()
	a.astCache, a.astCacheAt = out, time.Now()
	a.mu.Unlock()
	return out
}

// localState builds what this node tells its peers about itself.
func (a *Agent) localState() *wire.State {
	st := a.Status()
	cfg := a.cfgSnapshot()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	out := &wire.State{Node: a.node, Healthy: a.Healthy(ctx) == nil}
	if a.health != nil {
		out.Asterisk = "up"
		if err := a.health(ctx); err != nil {
			out.Asterisk, out.AsteriskError = "down", err.Error()
			if len(out.AsteriskError) > 512 {
				out.AsteriskError = out.AsteriskError[:512]
			}
		}
	}
	if info := a.asteriskInfo(ctx); info != nil && out.Asterisk != "down" {
		out.AsteriskVersion, out.Channels, out.FullyBooted = info.Version, info.Channels, info.FullyBooted
		out.AsteriskUptime = int64(info.Uptime.Seconds())
		if !info.LastReload.IsZero() {
			out.LastReload = info.LastReload.Unix()
		}
	}
	paths := []string{cfg.Node.DataDir}
	for _, j := range st.Jobs {
		out.Jobs = append(out.Jobs, wire.JobState{Job: j.Name, Generation: j.Generation, State: j.State})
		if j.Path != "" {
			paths = append(paths, j.Path)
		}
	}
	if hasTemplates(cfg) {
		out.Site, out.Vars = cfg.Node.Site, cfg.Node.Vars
	}
	hs, err := hostmon.ReadHostState(paths)
	if err != nil {
		a.log.Debug("host state incomplete", "err", err)
	}
	out.Load1 = hs.Load1
	for _, d := range hs.Disks {
		out.Disks = append(out.Disks, wire.Disk{Path: d.Path, FreeBytes: d.FreeBytes})
	}
	return out
}

// publishLoop sends this node's state to its peers when it changes (jobs,
// health) and periodically, and at once to a peer that comes up.
func (a *Agent) publishLoop(ctx context.Context) {
	t := time.NewTicker(publishMin)
	defer t.Stop()
	var last *wire.State
	var lastAt time.Time
	var jobs []wire.JobState // the jobs' lines as last seen, since jobsAt
	var jobsAt time.Time
	for {
		select {
		case <-ctx.Done():
			return
		case <-a.peerUp:
			last = nil // someone new: send everything now
		case <-t.C:
		}
		st := a.localState()
		now := time.Now()
		if jobsAt.IsZero() || !reflect.DeepEqual(jobs, st.Jobs) {
			jobs, jobsAt = st.Jobs, now
		}
		if !publishDue(last, st, now.Sub(lastAt), now.Sub(jobsAt)) {
			continue
		}
		if a.mon.Broadcast(st) > 0 {
			last, lastAt = st, now
		}
	}
}

// publishDue decides whether st goes out, given the last State sent (nil:
// none, or a peer came up) sent sinceSent ago, and how long the jobs'
// lines of st have held: at once for a change of health, after jobsSettle
// for one of the jobs alone, after publishMax anyway (load and free space
// ride along with that repeat).
func publishDue(last, st *wire.State, sinceSent, jobsHeld time.Duration) bool {
	switch {
	case last == nil || sinceSent >= publishMax || !sameHealth(last, st):
		return true
	case !reflect.DeepEqual(last.Jobs, st.Jobs):
		return jobsHeld >= jobsSettle
	}
	return false
}

// sameHealth compares what is published as soon as it changes: health,
// Asterisk's state and its channels.
func sameHealth(a, b *wire.State) bool {
	return a.Healthy == b.Healthy && a.Asterisk == b.Asterisk && a.AsteriskError == b.AsteriskError && a.Channels == b.Channels
}

// LocalState returns what this node publishes about itself to its peers
// (health, Asterisk, free space, load, its jobs' lines): the dashboard's
// own row. It asks the local Asterisk at most every asteriskInfoEvery.
func (a *Agent) LocalState() *wire.State { return a.localState() }
