package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
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

// node is one pbxsync agent run as its own process from a config file.
type node struct {
	name, dir, tree, data, cfg string
	port                       int
	pprof                      string // PBXSYNC_PPROF address, "" for none
	id                         string
	cmd                        *exec.Cmd
	done                       chan error
}

// pair is a push job from src to tgt, each agent its own process, the two
// reaching each other directly or through a wanlink in each direction.
type pair struct {
	bin      string
	job      string
	src, tgt *node
	toTgt    *wanlink.Link // src dials tgt through it (nil: direct)
	toSrc    *wanlink.Link
}

type pairOpts struct {
	srcTree  string        // the source's job path (default base/src/tree)
	via      bool          // through wanlinks
	delay    time.Duration // one-way delay of each wanlink
	pprof    bool          // each agent serves its profiles (PBXSYNC_PPROF)
	logLevel string        // the agents' log_level ("" for warn)
}

// newPair writes the two nodes' configs under base; the agents are not
// started.
func newPair(ctx context.Context, bin, base, job string, o pairOpts) (*pair, error) {
	p := &pair{bin: bin, job: job}
	for _, name := range []string{"src", "tgt"} {
		dir := filepath.Join(base, name)
		n := &node{name: "pbx-" + name, dir: dir, tree: filepath.Join(dir, "tree"), data: filepath.Join(dir, "data"), cfg: filepath.Join(dir, "pbxsync.toml")}
		if name == "src" && o.srcTree != "" {
			n.tree = o.srcTree
		}
		if err := os.MkdirAll(n.tree, 0o755); err != nil {
			return nil, err
		}
		out, err := exec.CommandContext(ctx, bin, "id", "--data-dir", n.data).Output()
		if err != nil {
			return nil, fmt.Errorf("pbxsync id --data-dir %s: %w", n.data, err)
		}
		n.id = strings.TrimSpace(string(out))
		if n.port, err = freeUDPPort(); err != nil {
			return nil, err
		}
		if o.pprof {
			if n.pprof, err = freeTCPAddr(); err != nil {
				return nil, err
			}
		}
		if name == "src" {
			p.src = n
		} else {
			p.tgt = n
		}
	}
	addr := func(n *node) string { return fmt.Sprintf("127.0.0.1:%d", n.port) }
	srcAddr, tgtAddr := addr(p.src), addr(p.tgt)
	if o.via {
		var err error
		if p.toTgt, err = wanlink.Start(ctx, wanlink.Config{Upstream: tgtAddr, Delay: o.delay}); err != nil {
			return nil, err
		}
		if p.toSrc, err = wanlink.Start(ctx, wanlink.Config{Upstream: srcAddr, Delay: o.delay}); err != nil {
			p.toTgt.Close()
			return nil, err
		}
		srcAddr, tgtAddr = p.toSrc.Addr().String(), p.toTgt.Addr().String()
	}
	level := o.logLevel
	if level == "" {
		level = "warn"
	}
	for _, w := range []struct {
		n, peer  *node
		peerAddr string
	}{{p.src, p.tgt, tgtAddr}, {p.tgt, p.src, srcAddr}} {
		cfg := fmt.Sprintf("[node]\nname = %q\nlisten = \"127.0.0.1:%d\"\ndata_dir = %q\nlog_level = %q\n\n"+
			"[[peer]]\nname = %q\naddress = %q\nid = %q\n\n"+
			"[[job]]\nname = %q\ntype = \"files\"\npath = %q\nmode = \"push\"\nsource = %q\ntargets = [%q]\n",
			w.n.name, w.n.port, w.n.data, level, w.peer.name, w.peerAddr, w.peer.id, job, w.n.tree, p.src.name, p.tgt.name)
		if err := os.WriteFile(w.n.cfg, []byte(cfg), 0o644); err != nil {
			return nil, err
		}
	}
	return p, nil
}

// links returns the bytes both wanlinks carried so far.
func (p *pair) links() wanlink.Counts {
	if p.toTgt == nil {
		return wanlink.Counts{}
	}
	a, b := p.toTgt.Counts(), p.toSrc.Counts()
	return wanlink.Counts{Up: a.Up + b.Down, Down: a.Down + b.Up, UpPackets: a.UpPackets + b.DownPackets,
		DownPackets: a.DownPackets + b.UpPackets, Dropped: a.Dropped + b.Dropped}
}

// close stops both agents and the links.
func (p *pair) close() {
	p.src.stop()
	p.tgt.stop()
	if p.toTgt != nil {
		p.toTgt.Close()
		p.toSrc.Close()
	}
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
func (n *node) start(bin string) error {
	logf, err := os.OpenFile(filepath.Join(n.dir, "agent.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	n.cmd = exec.Command(bin, "run", "--config", n.cfg)
	if n.pprof != "" {
		n.cmd.Env = append(os.Environ(), "PBXSYNC_PPROF="+n.pprof)
	}
	n.cmd.Stdout, n.cmd.Stderr = logf, logf
	if err := n.cmd.Start(); err != nil {
		logf.Close()
		return fmt.Errorf("start %s: %w", n.name, err)
	}
	n.done = make(chan error, 1)
	go func() { n.done <- n.cmd.Wait(); logf.Close() }()
	return nil
}

// stop ends the agent with SIGTERM (SIGKILL after two minutes).
func (n *node) stop() {
	if n.cmd == nil {
		return
	}
	n.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-n.done:
	case <-time.After(2 * time.Minute):
		n.cmd.Process.Kill()
		<-n.done
	}
	n.cmd = nil
}

// memory returns the agent's peak (VmHWM) and current (VmRSS) resident
// set in bytes.
func (n *node) memory() (peak, now int64) {
	if n.cmd == nil {
		return 0, 0
	}
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", n.cmd.Process.Pid))
	if err != nil {
		return 0, 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, _ := strings.Cut(sc.Text(), ":")
		kb, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
		switch k {
		case "VmHWM":
			peak = kb << 10
		case "VmRSS":
			now = kb << 10
		}
	}
	return peak, now
}

// rssSplit returns the agent's resident memory by kind (/proc/PID/status):
// anonymous (the Go heap, stacks) and file-backed (the store's mmap, the
// binary).
func (n *node) rssSplit() (anon, file int64) {
	if n.cmd == nil {
		return 0, 0
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", n.cmd.Process.Pid))
	if err != nil {
		return 0, 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		k, v, _ := strings.Cut(line, ":")
		kb, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
		switch k {
		case "RssAnon":
			anon = kb << 10
		case "RssFile":
			file = kb << 10
		}
	}
	return anon, file
}

// status asks the agent for its status over its control socket (what
// `pbxsync status --json` prints).
func (n *node) status(ctx context.Context) (*syncer.Status, error) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	resp, err := control.Call(ctx, control.SocketPath(n.data), control.Request{Cmd: "status"})
	if err != nil {
		return nil, err
	}
	var st syncer.Status
	if err := json.Unmarshal(resp.Status, &st); err != nil {
		return nil, fmt.Errorf("%s: status: %w", n.name, err)
	}
	return &st, nil
}

func (n *node) job(ctx context.Context, job string) (*syncer.JobStatus, error) {
	st, err := n.status(ctx)
	if err != nil {
		return nil, err
	}
	for i := range st.Jobs {
		if st.Jobs[i].Name == job {
			return &st.Jobs[i], nil
		}
	}
	return nil, fmt.Errorf("%s: no job %q in status", n.name, job)
}

// inSync reports whether the source has recorded its tree and the target
// answered good for that generation; it returns the generation.
func (p *pair) inSync(ctx context.Context) (bool, uint64, error) {
	js, err := p.src.job(ctx, p.job)
	if err != nil {
		return false, 0, err
	}
	if js.State == "starting" || js.Generation == 0 {
		return false, 0, nil
	}
	for _, t := range js.Targets {
		if t.Name == p.tgt.name {
			return t.Version == js.Generation && t.State == "good", js.Generation, nil
		}
	}
	return false, js.Generation, nil
}

// waitSync polls until inSync, the agents die, or limit passes.
func (p *pair) waitSync(ctx context.Context, every, limit time.Duration) (uint64, error) {
	deadline := time.Now().Add(limit)
	for {
		ok, gen, err := p.inSync(ctx)
		if ok {
			return gen, nil
		}
		for _, n := range []*node{p.src, p.tgt} {
			select {
			case e := <-n.done:
				n.done <- e
				return 0, fmt.Errorf("%s exited: %v (log %s)", n.name, e, filepath.Join(n.dir, "agent.log"))
			default:
			}
		}
		if time.Now().After(deadline) {
			return 0, fmt.Errorf("not in sync after %v (last: %v)", limit, err)
		}
		select {
		case <-ctx.Done():
			return 0, ctx.Err()
		case <-time.After(every):
		}
	}
}

// applied returns how many generations the target applied and its newest.
func (p *pair) applied(ctx context.Context) (uint64, uint64, error) {
	js, err := p.tgt.job(ctx, p.job)
	if err != nil {
		return 0, 0, err
	}
	return js.Applied, js.Generation, nil
}

// edit writes content to rel in the source tree and returns how long until
// the target applied a new generation (change→applied, seen from outside
// through the target's status) holding it.
func (p *pair) edit(ctx context.Context, rel string, content []byte, limit time.Duration) (time.Duration, error) {
	before, _, err := p.applied(ctx)
	if err != nil {
		return 0, err
	}
	t0 := time.Now()
	if err := os.WriteFile(filepath.Join(p.src.tree, rel), content, 0o644); err != nil {
		return 0, err
	}
	for {
		n, _, err := p.applied(ctx)
		if err == nil && n > before {
			took := time.Since(t0)
			got, err := os.ReadFile(filepath.Join(p.tgt.tree, rel))
			if err != nil {
				return 0, err
			}
			if string(got) != string(content) {
				return 0, fmt.Errorf("%s applied a generation without the edit of %s", p.tgt.name, rel)
			}
			return took, nil
		}
		if time.Since(t0) > limit {
			return 0, fmt.Errorf("edit of %s not applied after %v", rel, limit)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// sameTrees compares the two job trees: same paths, sizes and contents.
func sameTrees(a, b string) error {
	fa, err := listTree(a)
	if err != nil {
		return err
	}
	fb, err := listTree(b)
	if err != nil {
		return err
	}
	if len(fa) != len(fb) {
		return fmt.Errorf("%s has %d files, %s has %d", a, len(fa), b, len(fb))
	}
	for rel, size := range fa {
		if fb[rel] != size {
			return fmt.Errorf("%s: %d bytes in %s, %d in %s", rel, size, a, fb[rel], b)
		}
		x, err := os.ReadFile(filepath.Join(a, rel))
		if err != nil {
			return err
		}
		y, err := os.ReadFile(filepath.Join(b, rel))
		if err != nil {
			return err
		}
		if string(x) != string(y) {
			return fmt.Errorf("%s differs", rel)
		}
	}
	return nil
}

func listTree(root string) (map[string]int64, error) {
	out := map[string]int64{}
	err := filepath.Walk(root, func(p string, fi os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		if fi.IsDir() && strings.HasPrefix(fi.Name(), ".pbxsync") {
			return filepath.SkipDir
		}
		if fi.Mode().IsRegular() {
			rel, _ := filepath.Rel(root, p)
			out[rel] = fi.Size()
		}
		return nil
	})
	if errors.Is(err, os.ErrNotExist) {
		return out, nil
	}
	return out, err
}

// cpuProfile fetches a CPU profile of the agent over d from its
// PBXSYNC_PPROF listener into file.
func (n *node) cpuProfile(ctx context.Context, d time.Duration, file string) error {
	url := fmt.Sprintf("http://%s/debug/pprof/profile?seconds=%d", n.pprof, int(d.Seconds()))
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("profile of %s: %w", n.name, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("profile of %s: %s", n.name, resp.Status)
	}
	f, err := os.Create(file)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, resp.Body); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// heapProfile fetches a heap profile of the agent (after a collection:
// gc=1) from its PBXSYNC_PPROF listener into file.
func (n *node) heapProfile(ctx context.Context, file string) error {
	return n.heapProfileURL(ctx, "heap?gc=1", file)
}

// heapProfileURL fetches /debug/pprof/WHAT from the agent into file.
func (n *node) heapProfileURL(ctx context.Context, what, file string) error {
	url := fmt.Sprintf("http://%s/debug/pprof/%s", n.pprof, what)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("heap profile of %s: %w", n.name, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("heap profile of %s: %s", n.name, resp.Status)
	}
	f, err := os.Create(file)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, resp.Body); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// freeTCPAddr returns a free TCP address on 127.0.0.1.
func freeTCPAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return l.Addr().String(), nil
}
