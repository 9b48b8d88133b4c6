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
// load/space figures stay fresh.
const (
	publishMin = 500 * time.Millisecond
	publishMax = 15 * time.Second
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
	for {
		select {
		case <-ctx.Done():
			return
		case <-a.peerUp:
			last = nil // someone new: send everything now
		case <-t.C:
		}
		st := a.localState()
		if last != nil && time.Since(lastAt) < publishMax && sameState(last, st) {
			continue
		}
		if a.mon.Broadcast(st) > 0 {
			last, lastAt = st, time.Now()
		}
	}
}

// sameState compares what matters for change-driven publishing: health and
// jobs (load and free space ride along with the periodic repeat).
func sameState(a, b *wire.State) bool {
	return a.Healthy == b.Healthy && a.Asterisk == b.Asterisk && a.AsteriskError == b.AsteriskError && a.Channels == b.Channels && reflect.DeepEqual(a.Jobs, b.Jobs)
}
