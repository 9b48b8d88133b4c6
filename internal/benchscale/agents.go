package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"pbxsync/internal/benchproc"
	"pbxsync/internal/testport"
	"pbxsync/internal/wanlink"
)

// node is one pbxsync agent run as its own process from a config file.
type node struct {
	benchproc.Agent
	tree  string
	port  int
	pprof string // PBXSYNC_PPROF address, "" for none
	id    string
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
	var ports testport.Ports // see testport: not ":0" picks
	for _, name := range []string{"src", "tgt"} {
		dir := filepath.Join(base, name)
		n := &node{Agent: benchproc.Agent{Name: "pbx-" + name, Dir: dir, Data: filepath.Join(dir, "data"), Config: filepath.Join(dir, "pbxsync.toml")},
			tree: filepath.Join(dir, "tree")}
		if name == "src" && o.srcTree != "" {
			n.tree = o.srcTree
		}
		if err := os.MkdirAll(n.tree, 0o755); err != nil {
			return nil, err
		}
		var err error
		if n.id, err = benchproc.ID(ctx, bin, n.Data); err != nil {
			return nil, err
		}
		if n.port, err = ports.Next(); err != nil {
			return nil, err
		}
		if o.pprof {
			if n.pprof, err = freeTCPAddr(); err != nil {
				return nil, err
			}
			n.Env = []string{"PBXSYNC_PPROF=" + n.pprof}
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
			w.n.Name, w.n.port, w.n.Data, level, w.peer.Name, w.peerAddr, w.peer.id, job, w.n.tree, p.src.Name, p.tgt.Name)
		if err := os.WriteFile(w.n.Config, []byte(cfg), 0o644); err != nil {
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
	p.src.Stop()
	p.tgt.Stop()
	if p.toTgt != nil {
		p.toTgt.Close()
		p.toSrc.Close()
	}
}

// inSync reports whether the source has recorded its tree and the target
// answered good for that generation; it returns the generation.
func (p *pair) inSync(ctx context.Context) (bool, uint64, error) {
	js, err := p.src.Job(ctx, p.job)
	if err != nil {
		return false, 0, err
	}
	if js.State == "starting" || js.Generation == 0 {
		return false, 0, nil
	}
	for _, t := range js.Targets {
		if t.Name == p.tgt.Name {
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
			if err := n.Exited(); err != nil {
				return 0, err
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
	js, err := p.tgt.Job(ctx, p.job)
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
				return 0, fmt.Errorf("%s applied a generation without the edit of %s", p.tgt.Name, rel)
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
	return n.profile(ctx, fmt.Sprintf("profile?seconds=%d", int(d.Seconds())), file)
}

// heapProfile fetches a heap profile of the agent (after a collection:
// gc=1) from its PBXSYNC_PPROF listener into file.
func (n *node) heapProfile(ctx context.Context, file string) error {
	return n.profile(ctx, "heap?gc=1", file)
}

// profile fetches /debug/pprof/WHAT from the agent into file.
func (n *node) profile(ctx context.Context, what, file string) error {
	url := fmt.Sprintf("http://%s/debug/pprof/%s", n.pprof, what)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("profile %s of %s: %w", what, n.Name, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("profile %s of %s: %s", what, n.Name, resp.Status)
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

// waitPprof waits until the agent's PBXSYNC_PPROF listener answers (the
// agent has started), polling every 20 ms.
func (n *node) waitPprof(ctx context.Context) error {
	url := fmt.Sprintf("http://%s/debug/pprof/", n.pprof)
	for {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return err
		}
		if resp, err := http.DefaultClient.Do(req); err == nil {
			resp.Body.Close()
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("waiting for the profile listener of %s: %w", n.Name, ctx.Err())
		case <-time.After(20 * time.Millisecond):
		}
	}
}
