package syncer

// Test harness: real agents in this process, each with its own data_dir,
// job tree, identity, UDP port on 127.0.0.1 and captured log, talking
// real QUIC to each other.

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"pbxsync/internal/config"
	"pbxsync/internal/identity"
	"pbxsync/internal/testlog"
	"pbxsync/internal/testport"
	"pbxsync/internal/testwait"
)

// waitLimit bounds every wait of these tests. Tests wait for states (a
// tree converged, a generation good); the bound only ends a hang, so it is
// testwait.Limit: 60 s, 120 s under -race, scalable. Something that takes
// 200 ms on an idle machine takes seconds on a loaded 2-core CI machine.
var waitLimit = testwait.Limit()

// harness owns the agents of one test and the directory they live in.
type harness struct {
	tb    testing.TB
	base  string
	nodes []*tnode
	quiet bool // do not dump logs on failure (benchmarks)
}

// tnode is one agent of a test.
type tnode struct {
	h    *harness
	name string
	data string // data_dir
	tree string // root of the job(s)
	port int
	id   *identity.Identity

	// Config, rendered by configText. Tests change these before start.
	Peers []tpeer
	Jobs  []tjob
	Tail  string         // appended to the config (e.g. [[on_peer_down]] tables)
	Node  string         // appended to the [node] table (e.g. http = "...")
	tune  func(*Options) // changes the agent's options before start (may be nil)

	log *logBuffer

	mu     sync.Mutex
	agent  *Agent
	cancel context.CancelFunc
	done   chan error
}

// tpeer is one [[peer]] of a node's config.
type tpeer struct {
	Name    string
	Address string // "": never dialed
	ID      identity.ID
	Site    string // [[peer]] site, "" for none
	Relay   bool   // [[peer]] relay = true
}

// tjob is one [[job]]; Path defaults to the node's tree, Extra is
// appended verbatim (more keys, [[job.rule]] tables).
type tjob struct {
	Name    string
	Path    string
	Source  string
	Targets []string
	Extra   string
	Mode    string // "" is push; "mesh": Targets are the members, no source
}

// newHarness makes the base directory first so that its removal runs
// after the agents are stopped (cleanups run last-in first-out).
func newHarness(tb testing.TB) *harness {
	tb.Helper()
	h := &harness{tb: tb, base: tb.TempDir()}
	tb.Cleanup(func() {
		for _, n := range h.nodes {
			n.stopQuiet()
		}
		if tb.Failed() && !h.quiet {
			for _, n := range h.nodes {
				testlog.Dump(tb, n.name, n.log.String())
			}
		}
	})
	return h
}

// node creates a node: directories, identity and a free UDP port. It does
// not start it and gives it no peers or jobs.
func (h *harness) node(name string) *tnode {
	h.tb.Helper()
	n := &tnode{h: h, name: name, data: filepath.Join(h.base, name, "data"), tree: filepath.Join(h.base, name, "tree"), log: &logBuffer{}}
	if err := os.MkdirAll(n.tree, 0o755); err != nil {
		h.tb.Fatal(err)
	}
	id, err := identity.LoadOrCreate(n.data)
	if err != nil {
		h.tb.Fatal(err)
	}
	n.id = id
	n.port = freeUDPPort(h.tb)
	h.nodes = append(h.nodes, n)
	return n
}

// pair is the usual set-up: a pushes job "conf" to b, both pin each other.
func (h *harness) pair(extra string) (a, b *tnode) {
	a, b = h.node("a"), h.node("b")
	a.pin(b)
	b.pin(a)
	j := tjob{Name: "conf", Source: "a", Targets: []string{"b"}, Extra: extra}
	a.Jobs = []tjob{j}
	b.Jobs = []tjob{j}
	return a, b
}

// testPorts hands out the agents' ports (see testport: a port picked by
// binding ":0" could be taken again before the agent started, with tests
// running in parallel).
var testPorts testport.Ports

func freeUDPPort(tb testing.TB) int {
	tb.Helper()
	return testPorts.UDP(tb)
}

func (n *tnode) addr() string { return fmt.Sprintf("127.0.0.1:%d", n.port) }

// pin adds others as peers, pinned by their real IDs.
func (n *tnode) pin(others ...*tnode) {
	for _, o := range others {
		n.Peers = append(n.Peers, tpeer{Name: o.name, Address: o.addr(), ID: o.id.ID})
	}
}

// configText renders the node's TOML configuration.
func (n *tnode) configText() string {
	var b strings.Builder
	fmt.Fprintf(&b, "[node]\nname = %q\nlisten = %q\ndata_dir = %q\n%s\n", n.name, n.addr(), n.data, n.Node)
	for _, p := range n.Peers {
		fmt.Fprintf(&b, "[[peer]]\nname = %q\nid = %q\n", p.Name, p.ID.String())
		if p.Address != "" {
			fmt.Fprintf(&b, "address = %q\n", p.Address)
		}
		if p.Site != "" {
			fmt.Fprintf(&b, "site = %q\n", p.Site)
		}
		fmt.Fprintf(&b, "relay = %v\n\n", p.Relay)
	}
	for _, j := range n.Jobs {
		path := j.Path
		if path == "" {
			path = n.tree
		}
		targets := make([]string, len(j.Targets))
		for i, t := range j.Targets {
			targets[i] = fmt.Sprintf("%q", t)
		}
		if j.Mode == config.ModeMesh {
			fmt.Fprintf(&b, "[[job]]\nname = %q\npath = %q\nmode = \"mesh\"\ntargets = [%s]\n%s\n",
				j.Name, path, strings.Join(targets, ", "), j.Extra)
			continue
		}
		fmt.Fprintf(&b, "[[job]]\nname = %q\npath = %q\nmode = \"push\"\nsource = %q\ntargets = [%s]\n%s\n",
			j.Name, path, j.Source, strings.Join(targets, ", "), j.Extra)
	}
	b.WriteString(n.Tail)
	return b.String()
}

// start parses the config as production does and runs a new Agent.
func (n *tnode) start() {
	n.h.tb.Helper()
	text := n.configText()
	file := filepath.Join(n.h.base, n.name, "pbxsync.toml")
	cfg, err := config.Parse(file, []byte(text))
	if err != nil {
		n.h.tb.Fatalf("config of %s: %v\n%s", n.name, err, text)
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.agent != nil {
		n.h.tb.Fatalf("%s is already running", n.name)
	}
	fmt.Fprintf(n.log, "----- %s: agent starting -----\n", time.Now().Format("15:04:05.000"))
	log := slog.New(slog.NewTextHandler(n.log, &slog.HandlerOptions{Level: slog.LevelDebug})).With("node", n.name)
	opts := Options{Config: cfg, Identity: n.id, Log: log, Version: "test"}
	if n.tune != nil {
		n.tune(&opts)
	}
	a, err := New(opts)
	if err != nil {
		n.h.tb.Fatalf("start %s: %v", n.name, err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	n.agent, n.cancel, n.done = a, cancel, done
}

// stop cancels the agent and waits for Run to return.
func (n *tnode) stop() {
	n.h.tb.Helper()
	if err := n.stopQuiet(); err != nil {
		n.h.tb.Fatal(err)
	}
}

func (n *tnode) stopQuiet() error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.agent == nil {
		return nil
	}
	n.cancel()
	var err error
	select {
	case rerr := <-n.done:
		if rerr != nil && !errors.Is(rerr, context.Canceled) {
			err = fmt.Errorf("%s: Run returned %v", n.name, rerr)
		}
	case <-time.After(waitLimit):
		err = fmt.Errorf("%s: Run did not return within %s of cancel", n.name, waitLimit)
	}
	fmt.Fprintf(n.log, "----- %s: agent stopped -----\n", time.Now().Format("15:04:05.000"))
	n.agent, n.cancel, n.done = nil, nil, nil
	return err
}

func (n *tnode) restart() {
	n.h.tb.Helper()
	n.stop()
	n.start()
}

// a returns the running agent.
func (n *tnode) a() *Agent {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.agent == nil {
		n.h.tb.Fatalf("%s is not running", n.name)
	}
	return n.agent
}

// jobStatus returns the status of the node's job name.
func (n *tnode) jobStatus(name string) (JobStatus, bool) {
	for _, j := range n.a().Status().Jobs {
		if j.Name == name {
			return j, true
		}
	}
	return JobStatus{}, false
}

func (n *tnode) path(rel string) string { return filepath.Join(n.tree, filepath.FromSlash(rel)) }

func (n *tnode) write(rel, content string, mode fs.FileMode) {
	n.h.tb.Helper()
	p := n.path(rel)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		n.h.tb.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(content), mode); err != nil {
		n.h.tb.Fatal(err)
	}
	if err := os.Chmod(p, mode); err != nil { // WriteFile keeps an existing file's mode
		n.h.tb.Fatal(err)
	}
}

// replace puts content into rel atomically (written beside the tree, then
// renamed), so the watcher never sees a half-written file; rel's directory
// is made when it is missing.
func (n *tnode) replace(rel string, content []byte, mode fs.FileMode) {
	n.h.tb.Helper()
	tmp, err := os.CreateTemp(n.data, "replace-*")
	if err != nil {
		n.h.tb.Fatal(err)
	}
	_, err = tmp.Write(content)
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Chmod(tmp.Name(), mode)
	}
	if err == nil {
		err = os.MkdirAll(filepath.Dir(n.path(rel)), 0o755)
	}
	if err == nil {
		err = os.Rename(tmp.Name(), n.path(rel))
	}
	if err != nil {
		os.Remove(tmp.Name())
		n.h.tb.Fatal(err)
	}
}

func (n *tnode) appendTo(rel, s string) {
	n.h.tb.Helper()
	f, err := os.OpenFile(n.path(rel), os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		n.h.tb.Fatal(err)
	}
	_, err = f.WriteString(s)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		n.h.tb.Fatal(err)
	}
}

func (n *tnode) read(rel string) []byte {
	n.h.tb.Helper()
	b, err := os.ReadFile(n.path(rel))
	if err != nil {
		n.h.tb.Fatal(err)
	}
	return b
}

// logHas reports whether the node's log holds every one of subs on one line.
func (n *tnode) logHas(subs ...string) bool { return n.countLines(subs...) > 0 }

// eventually polls cond until it returns nil or limit passes, then fails
// with cond's last error.
func eventually(tb testing.TB, limit time.Duration, what string, cond func() error) {
	tb.Helper()
	deadline := time.Now().Add(limit)
	for {
		err := cond()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			tb.Fatalf("%s: not after %s: %v", what, limit, err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// converged waits until every target's tree equals the source's.
func converged(tb testing.TB, what string, src *tnode, targets ...*tnode) {
	tb.Helper()
	eventually(tb, waitLimit, what, func() error {
		for _, t := range targets {
			if err := diffTrees(src.tree, t.tree); err != nil {
				return fmt.Errorf("%s vs %s: %w", src.name, t.name, err)
			}
		}
		return nil
	})
}

// entry is what diffTrees compares of one path.
type entry struct {
	dir     bool
	mode    fs.FileMode
	mtime   int64 // files only
	content []byte
}

// snapshot reads a tree: every path below root (not root itself) except
// pbxsync's own hidden files and symlinks.
func snapshot(root string) (map[string]entry, error) {
	out := map[string]entry{}
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if p == root {
			return nil
		}
		if strings.HasPrefix(d.Name(), ".pbxsync") {
			if d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		rel, _ := filepath.Rel(root, p)
		rel = filepath.ToSlash(rel)
		fi, err := os.Lstat(p)
		if err != nil {
			return err
		}
		if fi.Mode()&fs.ModeSymlink != 0 {
			return nil // never part of a job
		}
		e := entry{dir: fi.IsDir(), mode: fi.Mode()}
		if fi.Mode().IsRegular() {
			e.mtime = fi.ModTime().UnixNano()
			if e.content, err = os.ReadFile(p); err != nil {
				return err
			}
		}
		out[rel] = e
		return nil
	})
	return out, err
}

// diffTrees returns the first differences between two trees in paths,
// kinds, modes, file contents and file mtimes, or nil.
func diffTrees(a, b string) error {
	sa, err := snapshot(a)
	if err != nil {
		return err
	}
	sb, err := snapshot(b)
	if err != nil {
		return err
	}
	var diffs []string
	for p, x := range sa {
		y, ok := sb[p]
		switch {
		case !ok:
			diffs = append(diffs, p+": missing")
		case x.dir != y.dir:
			diffs = append(diffs, p+": kind differs")
		case x.mode != y.mode:
			diffs = append(diffs, fmt.Sprintf("%s: mode %v vs %v", p, x.mode, y.mode))
		case !bytes.Equal(x.content, y.content):
			diffs = append(diffs, fmt.Sprintf("%s: content differs (%d vs %d bytes)", p, len(x.content), len(y.content)))
		case x.mtime != y.mtime:
			diffs = append(diffs, fmt.Sprintf("%s: mtime %d vs %d", p, x.mtime, y.mtime))
		}
	}
	for p := range sb {
		if _, ok := sa[p]; !ok {
			diffs = append(diffs, p+": extra")
		}
	}
	if len(diffs) == 0 {
		return nil
	}
	sort.Strings(diffs)
	if len(diffs) > 5 {
		diffs = append(diffs[:5], fmt.Sprintf("… %d more", len(diffs)-5))
	}
	return errors.New(strings.Join(diffs, "; "))
}

// logBuffer is a goroutine-safe log sink.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}
