package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"time"
)

// modeRun is one fleet of the two-site comparison: the same changes with
// sites configured (one copy per remote site) or with everyone in one
// site (today's direct fan-out).
type modeRun struct {
	name                string
	mesh                bool // a mesh job (the origin is the member that changes)
	targets, far        int
	idleOrigin, idleWAN float64   // bytes per second while idle
	copies              []*change // changes of random content: bytes per change
	edits               []*change // one-line dialplan edits: latency
	via                 map[string]string
	farNames            map[string]bool // targets outside the origin's site
	failover            *failover       // sites only
}

// failover is what a relay's death mid-rollout cost.
type failover struct {
	relay    string
	killedAt time.Duration // after the change was made
	relayHad uint64        // bytes the relay had received over the WAN when killed
	took     time.Duration // kill → the rest of its site applied the change
	size     int
	maxInto  uint64 // most WAN bytes any other far target received for it
	siteInto uint64 // WAN bytes into the relay's site for it, the dead relay included
	others   int
}

// benchSites runs the two-site comparison in both modes, one after the
// other, on the same layout and WAN.
func benchSites(ctx context.Context, o options, rep *report) error {
	l := layout{originSite: "dc1", sites: []siteHosts{{"dc2", o.perSite}, {"dc3", o.perSite}}}
	for _, sites := range []bool{false, true} {
		name := "one site (direct fan-out)"
		dir := "direct"
		if sites {
			name, dir = "sites (relays)", "sites"
		}
		progress("%s: %d targets in 2 remote sites, %v each way", name, 2*o.perSite, o.delay)
		m, err := runMode(ctx, o, filepath.Join(o.work, dir), l, fleetOpts{sites: sites, delay: o.delay, loss: o.loss, seed: o.seed}, name)
		if m != nil {
			rep.modes = append(rep.modes, m)
		}
		if err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
	}
	return nil
}

// benchMesh runs the two-site comparison for a mesh job whose member in
// dc1 makes every change: its members in one site (every member fetches
// from the origin) and in sites (one copy per remote site, to its relay).
func benchMesh(ctx context.Context, o options, rep *report) error {
	l := layout{originSite: "dc1", sites: []siteHosts{{"dc2", o.perSite}, {"dc3", o.perSite}}}
	for _, sites := range []bool{false, true} {
		name, dir := "mesh, one site (direct)", "mesh-direct"
		if sites {
			name, dir = "mesh, sites (relays)", "mesh-sites"
		}
		progress("%s: %d members in 2 remote sites, %v each way", name, 2*o.perSite, o.delay)
		m, err := runMode(ctx, o, filepath.Join(o.work, dir), l, fleetOpts{sites: sites, mesh: true, delay: o.delay, loss: o.loss, seed: o.seed}, name)
		if m != nil {
			rep.meshModes = append(rep.meshModes, m)
		}
		if err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
	}
	return nil
}

func runMode(ctx context.Context, o options, dir string, l layout, fo fleetOpts, name string) (*modeRun, error) {
	f, err := newFleet(ctx, o.bin, dir, l, fo)
	if err != nil {
		return nil, err
	}
	defer f.close()
	if err := writeSeed(f); err != nil {
		return nil, err
	}
	if err := f.start(); err != nil {
		return nil, err
	}
	if err := f.waitInitial(ctx, o.limit); err != nil {
		return nil, fmt.Errorf("initial sync: %w", err)
	}
	if err := f.waitConnected(ctx, o.limit); err != nil {
		return nil, err
	}
	m := &modeRun{name: name, mesh: fo.mesh, targets: len(f.targets), far: len(f.far()), farNames: map[string]bool{}}
	for _, t := range f.far() {
		m.farNames[t.Name] = true
	}
	if m.idleOrigin, m.idleWAN, err = f.idleRates(ctx, o.idle); err != nil {
		return m, err
	}
	for i := range o.copies {
		c, err := f.makeChange(ctx, fmt.Sprintf("blob-%d.bin", i), randomContent(o.seed+uint64(i), o.copyKB<<10), o.limit)
		if err != nil {
			return m, fmt.Errorf("change %d: %w", i, err)
		}
		m.copies = append(m.copies, c)
	}
	for i := range o.edits {
		c, err := f.makeChange(ctx, seedFile, dialplan(i+1), o.limit)
		if err != nil {
			return m, fmt.Errorf("edit %d: %w", i, err)
		}
		m.edits = append(m.edits, c)
	}
	if m.via, err = f.paths(ctx); err != nil {
		return m, err
	}
	progress("  %s: %d changes, %d edits done", name, len(m.copies), len(m.edits))
	if fo.sites && !fo.mesh {
		fv, err := f.killRelay(ctx, o, m.via)
		m.failover = fv
		if err != nil {
			return m, fmt.Errorf("relay failover: %w", err)
		}
	}
	return m, nil
}

// writeSeed writes the origin's first tree.
func writeSeed(f *fleet) error {
	return writeFile(filepath.Join(f.origin.tree, seedFile), dialplan(0))
}

// paths returns, per target, the relay the origin's status says it was
// reached through ("" when direct).
func (f *fleet) paths(ctx context.Context) (map[string]string, error) {
	raw, err := f.origin.StatusJSON(ctx)
	if err != nil {
		return nil, err
	}
	var st struct {
		Jobs []struct {
			Name    string `json:"name"`
			Targets []struct {
				Name string `json:"name"`
				Via  string `json:"via"`
			} `json:"targets"`
		} `json:"jobs"`
	}
	if err := json.Unmarshal(raw, &st); err != nil {
		return nil, fmt.Errorf("%s: status: %w", f.origin.Name, err)
	}
	out := map[string]string{}
	for _, j := range st.Jobs {
		if j.Name == job {
			for _, t := range j.Targets {
				out[t.Name] = t.Via
			}
		}
	}
	return out, nil
}

func writeFile(path string, b []byte) error { return os.WriteFile(path, b, 0o644) }

// killRelay makes a large change and kills (SIGKILL) the relay of the
// first remote site once it has received part of it over the WAN; it
// measures how long the rest of that site takes to apply the change and
// what each of them received over the WAN meanwhile.
func (f *fleet) killRelay(ctx context.Context, o options, via map[string]string) (*failover, error) {
	far := f.far()
	relay := far[0] // the host configured relay = true, unless the status names another
	for _, t := range far {
		if t.site == relay.site && via[t.Name] != "" {
			if i := slices.IndexFunc(far, func(r *agent) bool { return r.Name == via[t.Name] }); i >= 0 {
				relay = far[i]
				break
			}
		}
	}
	site := relay.site
	var others []*agent
	for _, t := range far {
		if t.site == site && t != relay {
			others = append(others, t)
		}
	}
	before, err := f.appliedCounts(ctx, others)
	if err != nil {
		return nil, err
	}
	into0 := f.into()
	r0 := f.wan.Into(relay.Name).Up
	content := randomContent(o.seed+1000, o.failoverKB<<10)
	rel := "failover.bin"
	fv := &failover{relay: relay.Name, size: len(content), others: len(others)}
	t0 := time.Now()
	if err := writeFile(filepath.Join(f.origin.tree, rel), content); err != nil {
		return fv, err
	}
	// Mid-rollout: the relay got a tenth of the change over the WAN.
	for f.wan.Into(relay.Name).Up-r0 < uint64(len(content)/10) {
		if time.Since(t0) > o.limit {
			return fv, fmt.Errorf("the relay %s did not receive a tenth of the change within %v", relay.Name, o.limit)
		}
		time.Sleep(time.Millisecond)
	}
	fv.relayHad = f.wan.Into(relay.Name).Up - r0
	relay.Kill()
	tk := time.Now()
	fv.killedAt = tk.Sub(t0)
	progress("  killed the relay %s %v into the rollout (it had %d bytes)", relay.Name, fv.killedAt.Round(time.Millisecond), fv.relayHad)
	lat, err := f.waitApplied(ctx, others, before, rel, content, t0, o.limit)
	if err != nil {
		return fv, err
	}
	for _, d := range lat {
		fv.took = max(fv.took, d-fv.killedAt) // the last of them marked it good
	}
	into := f.into()
	for _, t := range far {
		if t.site != site {
			continue
		}
		n := into[t.Name] - into0[t.Name]
		fv.siteInto += n
		if t != relay {
			fv.maxInto = max(fv.maxInto, n)
		}
	}
	return fv, nil
}

// scaleRun is the 32-target run: every target's change→applied and the
// origin's peak memory.
type scaleRun struct {
	targets, sites int
	latencies      []time.Duration // every target, every edit
	last           []time.Duration // per edit: until the last target applied
	originPeak     int64
	initial        time.Duration
}

// benchScale runs o.scaleSites sites of o.scalePerSite targets each, the
// origin in the first, with sites configured.
func benchScale(ctx context.Context, o options, rep *report) error {
	var l layout
	l.originSite = "dc1"
	for i := 1; i <= o.scaleSites; i++ {
		l.sites = append(l.sites, siteHosts{fmt.Sprintf("dc%d", i), o.scalePerSite})
	}
	progress("scale: %d targets in %d sites", o.scaleSites*o.scalePerSite, o.scaleSites)
	f, err := newFleet(ctx, o.bin, filepath.Join(o.work, "scale"), l, fleetOpts{sites: true, delay: o.delay, loss: o.loss, seed: o.seed})
	if err != nil {
		return err
	}
	defer f.close()
	if err := writeSeed(f); err != nil {
		return err
	}
	s := &scaleRun{targets: len(f.targets), sites: o.scaleSites}
	rep.scale = s
	t0 := time.Now()
	if err := f.start(); err != nil {
		return err
	}
	if err := f.waitInitial(ctx, o.limit); err != nil {
		return fmt.Errorf("initial sync: %w", err)
	}
	s.initial = time.Since(t0)
	if err := f.waitConnected(ctx, o.limit); err != nil {
		return err
	}
	for i := range o.scaleEdits {
		c, err := f.makeChange(ctx, seedFile, dialplan(i+1), o.limit)
		if err != nil {
			return fmt.Errorf("edit %d: %w", i, err)
		}
		var worst time.Duration
		for _, d := range c.latency {
			s.latencies = append(s.latencies, d)
			worst = max(worst, d)
		}
		s.last = append(s.last, worst)
	}
	s.originPeak, _ = f.origin.Memory()
	slices.Sort(s.last)
	return nil
}
