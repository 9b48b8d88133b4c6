package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"pbxsync/internal/control"
	"pbxsync/internal/wanlink"
	"pbxsync/syncer"
)

// job is the name of the one push job of every fleet.
const job = "conf"

// agent is one pbxsync agent, its own process, run from a generated
// config file.
type agent struct {
	name, site            string
	dir, tree, data, conf string
	port                  int
	id                    string
	cmd                   *exec.Cmd
	done                  chan error
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
}

// newFleet writes the agents' identities and configs under base and
// starts the WAN; the agents are not started.
func newFleet(ctx context.Context, bin, base string, l layout, o fleetOpts) (*fleet, error) {
	f := &fleet{bin: bin}
	mk := func(name, site string) (*agent, error) {
		dir := filepath.Join(base, name)
		a := &agent{name: name, site: site, dir: dir, tree: filepath.Join(dir, "tree"), data: filepath.Join(dir, "data"), conf: filepath.Join(dir, "pbxsync.toml")}
		if err := os.MkdirAll(a.tree, 0o755); err != nil {
			return nil, err
		}
		out, err := exec.CommandContext(ctx, bin, "id", "--data-dir", a.data).Output()
		if err != nil {
			return nil, fmt.Errorf("pbxsync id --data-dir %s: %w", a.data, err)
		}
		a.id = strings.TrimSpace(string(out))
		if a.port, err = freeUDPPort(); err != nil {
			return nil, err
		}
		return a, nil
	}
	var err error
	if f.origin, err = mk("origin", l.originSite); err != nil {
		return nil, err
	}
	hosts := []wanlink.Host{{Name: f.origin.name, Site: f.origin.site, Addr: f.origin.addr()}}
	for _, s := range l.sites {
		for i := 1; i <= s.hosts; i++ {
			a, err := mk(fmt.Sprintf("%s-pbx%d", s.name, i), s.name)
			if err != nil {
				return nil, err
			}
			f.targets = append(f.targets, a)
			hosts = append(hosts, wanlink.Host{Name: a.name, Site: a.site, Addr: a.addr()})
		}
	}
	if f.wan, err = wanlink.StartWAN(ctx, wanlink.WANConfig{Hosts: hosts, Delay: o.delay, Loss: o.loss, Seed: o.seed}); err != nil {
		return nil, err
	}
	for _, a := range f.all() {
		if err := os.WriteFile(a.conf, []byte(f.config(a, o)), 0o644); err != nil {
			f.wan.Close()
			return nil, err
		}
	}
	return f, nil
}

// config renders a's TOML: the origin pins every target; a target pins
// the origin and the hosts of its own site (what a relay forwards to).
func (f *fleet) config(a *agent, o fleetOpts) string {
	var b strings.Builder
	fmt.Fprintf(&b, "[node]\nname = %q\nlisten = %q\ndata_dir = %q\nlog_level = \"warn\"\n", a.name, a.addr(), a.data)
	if o.sites {
		fmt.Fprintf(&b, "site = %q\n", a.site)
	}
	b.WriteString("\n")
	relays := map[string]bool{} // the first host of each site
	for _, t := range f.targets {
		if _, seen := relays[t.site]; !seen {
			relays[t.site] = true
			relays[t.name] = true
		}
	}
	for _, p := range f.all() {
		if p == a || (a != f.origin && p != f.origin && p.site != a.site) {
			continue
		}
		fmt.Fprintf(&b, "[[peer]]\nname = %q\naddress = %q\nid = %q\n", p.name, f.wan.Addr(a.name, p.name), p.id)
		if o.sites {
			fmt.Fprintf(&b, "site = %q\n", p.site)
			if relays[p.name] && p.site != f.origin.site {
				b.WriteString("relay = true\n")
			}
		}
		b.WriteString("\n")
	}
	var names []string
	for _, t := range f.targets {
		names = append(names, strconv.Quote(t.name))
	}
	order := o.order
	if order == "" {
		order = "parallel"
	}
	fmt.Fprintf(&b, "[[job]]\nname = %q\ntype = \"files\"\npath = %q\nmode = \"push\"\nsource = %q\ntargets = [%s]\norder = %q\n",
		job, a.tree, f.origin.name, strings.Join(names, ", "), order)
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
		if err := a.start(f.bin); err != nil {
			return err
		}
	}
	return nil
}

// close stops every agent and the WAN.
func (f *fleet) close() {
	for _, a := range f.all() {
		a.stop()
	}
	f.wan.Close()
}

// originBytes is what the origin's QUIC connections sent so far, summed
// over its peers (UDP payload, as `pbxsync status` reports it).
func (f *fleet) originBytes(ctx context.Context) (uint64, error) {
	st, err := f.origin.status(ctx)
	if err != nil {
		return 0, err
	}
	var n uint64
	for _, p := range st.Peers {
		n += p.BytesSent
	}
	return n, nil
}

func freeUDPPort() (int, error) {
	c, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer c.Close()
	return c.LocalAddr().(*net.UDPAddr).Port, nil
}

// start runs the agent; its log goes to DIR/agent.log.
func (a *agent) start(bin string) error {
	logf, err := os.OpenFile(filepath.Join(a.dir, "agent.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	a.cmd = exec.Command(bin, "run", "--config", a.conf)
	a.cmd.Stdout, a.cmd.Stderr = logf, logf
	if err := a.cmd.Start(); err != nil {
		logf.Close()
		return fmt.Errorf("start %s: %w", a.name, err)
	}
	a.done = make(chan error, 1)
	go func() { a.done <- a.cmd.Wait(); logf.Close() }()
	return nil
}

// stop ends the agent with SIGTERM (SIGKILL after a minute).
func (a *agent) stop() {
	if a.cmd == nil {
		return
	}
	a.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-a.done:
	case <-time.After(time.Minute):
		a.cmd.Process.Kill()
		<-a.done
	}
	a.cmd = nil
}

// kill ends the agent with SIGKILL, as a crash would.
func (a *agent) kill() {
	if a.cmd == nil {
		return
	}
	a.cmd.Process.Kill()
	<-a.done
	a.cmd = nil
}

// exited returns the error of an agent that stopped on its own, nil while
// it runs.
func (a *agent) exited() error {
	if a.cmd == nil {
		return nil
	}
	select {
	case e := <-a.done:
		a.done <- e
		return fmt.Errorf("%s exited: %v (log %s)", a.name, e, filepath.Join(a.dir, "agent.log"))
	default:
		return nil
	}
}

// peakRSS returns the agent's peak resident set (VmHWM) in bytes.
func (a *agent) peakRSS() int64 {
	if a.cmd == nil {
		return 0
	}
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", a.cmd.Process.Pid))
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "VmHWM:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			return kb << 10
		}
	}
	return 0
}

// status asks the agent over its control socket (what `pbxsync status
// --json` prints).
func (a *agent) status(ctx context.Context) (*syncer.Status, error) {
	raw, err := a.statusJSON(ctx)
	if err != nil {
		return nil, err
	}
	var st syncer.Status
	if err := json.Unmarshal(raw, &st); err != nil {
		return nil, fmt.Errorf("%s: status: %w", a.name, err)
	}
	return &st, nil
}

// statusJSON returns the agent's status as JSON.
func (a *agent) statusJSON(ctx context.Context) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	resp, err := control.Call(ctx, control.SocketPath(a.data), control.Request{Cmd: "status"})
	if err != nil {
		return nil, fmt.Errorf("%s: status: %w", a.name, err)
	}
	return resp.Status, nil
}

// jobStatus returns the agent's status of the fleet's job.
func (a *agent) jobStatus(ctx context.Context) (*syncer.JobStatus, error) {
	st, err := a.status(ctx)
	if err != nil {
		return nil, err
	}
	for i := range st.Jobs {
		if st.Jobs[i].Name == job {
			return &st.Jobs[i], nil
		}
	}
	return nil, fmt.Errorf("%s: no job %q in status", a.name, job)
}
