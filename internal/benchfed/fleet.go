package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"pbxsync/internal/benchproc"
	"pbxsync/internal/testport"
	"pbxsync/internal/wanlink"
	"pbxsync/syncer"
)

// job is the name of the one push job of every fleet.
const job = "conf"

// agent is one pbxsync agent, its own process, run from a generated
// config file.
type agent struct {
	benchproc.Agent
	site, tree string
	port       int
	id         string
}

func (a *agent) addr() string { return fmt.Sprintf("127.0.0.1:%d", a.port) }

// layout is the shape of a fleet: the origin's site and how many targets
// each site has (the origin's site may have targets too).
type layout struct {
	originSite string
	sites      []siteHosts
}

type siteHosts struct {
	name  string
	hosts int
}

// fleet is one origin pushing one job to targets in several sites, every
// agent its own process, the sites joined by a wanlink.WAN: every
// datagram between two sites crosses an emulated link, none within a
// site does. With sites set, the configs carry [node] site, [[peer]]
// site and relay = true on the first host of each site; without, they
// carry none (everyone in one site: direct fan-out) over the same WAN.
type fleet struct {
	bin     string
	origin  *agent
	targets []*agent // in the job's targets order: site by site
	wan     *wanlink.WAN
}

type fleetOpts struct {
	sites bool          // write site keys (relaying); false: direct fan-out
	delay time.Duration // one way between sites
	loss  float64
	seed  uint64
	order string // the job's order ("" for parallel)
	mesh  bool   // a mesh job of every agent, the origin the member that changes
}

// newFleet writes the agents' identities and configs under base and
// starts the WAN; the agents are not started.
func newFleet(ctx context.Context, bin, base string, l layout, o fleetOpts) (*fleet, error) {
	f := &fleet{bin: bin}
	// ports from below the ephemeral range, each checked free (see
	// testport: a ":0" pick could be any other socket's before the agent
	// bound it; an agent of TestQuickRun exited at start inside make test)
	var ports testport.Ports
	mk := func(name, site string) (*agent, error) {
		dir := filepath.Join(base, name)
		a := &agent{Agent: benchproc.Agent{Name: name, Dir: dir, Data: filepath.Join(dir, "data"), Config: filepath.Join(dir, "pbxsync.toml")},
			site: site, tree: filepath.Join(dir, "tree")}
		if err := os.MkdirAll(a.tree, 0o755); err != nil {
			return nil, err
		}
		var err error
		if a.id, err = benchproc.ID(ctx, bin, a.Data); err != nil {
			return nil, err
		}
		if a.port, err = ports.Next(); err != nil {
			return nil, err
		}
		return a, nil
	}
	var err error
	if f.origin, err = mk("origin", l.originSite); err != nil {
		return nil, err
	}
	hosts := []wanlink.Host{{Name: f.origin.Name, Site: f.origin.site, Addr: f.origin.addr()}}
	for _, s := range l.sites {
		for i := 1; i <= s.hosts; i++ {
			a, err := mk(fmt.Sprintf("%s-pbx%d", s.name, i), s.name)
			if err != nil {
				return nil, err
			}
			f.targets = append(f.targets, a)
			hosts = append(hosts, wanlink.Host{Name: a.Name, Site: a.site, Addr: a.addr()})
		}
	}
	if f.wan, err = wanlink.StartWAN(ctx, wanlink.WANConfig{Hosts: hosts, Delay: o.delay, Loss: o.loss, Seed: o.seed}); err != nil {
		return nil, err
	}
	for _, a := range f.all() {
		if err := os.WriteFile(a.Config, []byte(f.config(a, o)), 0o644); err != nil {
			f.wan.Close()
			return nil, err
		}
	}
	return f, nil
}

// config renders a's TOML: the origin pins every target; a target pins
// the origin and the hosts of its own site (what a relay forwards to). In
// a mesh every member pins every other.
func (f *fleet) config(a *agent, o fleetOpts) string {
	var b strings.Builder
	fmt.Fprintf(&b, "[node]\nname = %q\nlisten = %q\ndata_dir = %q\nlog_level = \"warn\"\n", a.Name, a.addr(), a.Data)
	if o.sites {
		fmt.Fprintf(&b, "site = %q\n", a.site)
	}
	b.WriteString("\n")
	relays := map[string]bool{} // the first host of each site
	for _, t := range f.targets {
		if _, seen := relays[t.site]; !seen {
			relays[t.site] = true
			relays[t.Name] = true
		}
	}
	for _, p := range f.all() {
		if p == a || (!o.mesh && a != f.origin && p != f.origin && p.site != a.site) {
			continue
		}
		fmt.Fprintf(&b, "[[peer]]\nname = %q\naddress = %q\nid = %q\n", p.Name, f.wan.Addr(a.Name, p.Name), p.id)
		if o.sites {
			fmt.Fprintf(&b, "site = %q\n", p.site)
			if relays[p.Name] && p.site != f.origin.site {
				b.WriteString("relay = true\n")
			}
		}
		b.WriteString("\n")
	}
	var names []string
	for _, t := range f.targets {
		names = append(names, strconv.Quote(t.Name))
	}
	if o.mesh {
		fmt.Fprintf(&b, "[[job]]\nname = %q\ntype = \"files\"\npath = %q\nmode = \"mesh\"\ntargets = [%q, %s]\n",
			job, a.tree, f.origin.Name, strings.Join(names, ", "))
		return b.String()
	}
	order := o.order
	if order == "" {
		order = "parallel"
	}
	fmt.Fprintf(&b, "[[job]]\nname = %q\ntype = \"files\"\npath = %q\nmode = \"push\"\nsource = %q\ntargets = [%s]\norder = %q\n",
		job, a.tree, f.origin.Name, strings.Join(names, ", "), order)
	return b.String()
}

func (f *fleet) all() []*agent { return append([]*agent{f.origin}, f.targets...) }

// far returns the targets outside the origin's site.
func (f *fleet) far() []*agent {
	var out []*agent
	for _, t := range f.targets {
		if t.site != f.origin.site {
			out = append(out, t)
		}
	}
	return out
}

// start runs every agent.
func (f *fleet) start() error {
	for _, a := range f.all() {
		if err := a.Start(f.bin); err != nil {
			return err
		}
	}
	return nil
}

// close stops every agent and the WAN.
func (f *fleet) close() {
	for _, a := range f.all() {
		a.Stop()
	}
	f.wan.Close()
}

// originBytes is what the origin's QUIC connections sent so far, summed
// over its peers (UDP payload, as `pbxsync status` reports it).
func (f *fleet) originBytes(ctx context.Context) (uint64, error) {
	st, err := f.origin.Status(ctx)
	if err != nil {
		return 0, err
	}
	var n uint64
	for _, p := range st.Peers {
		n += p.BytesSent
	}
	return n, nil
}

// jobStatus returns the agent's status of the fleet's job.
func (a *agent) jobStatus(ctx context.Context) (*syncer.JobStatus, error) { return a.Job(ctx, job) }
