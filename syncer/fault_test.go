package syncer

// Fault injection, in the spirit of crash_test.go: real agents on
// loopback meet an unreadable file, a full disk, a read-only or
// bind-mounted job root, file↔directory and symlink swaps. After each
// fault every test asserts the same three things (faultCheck): no file
// outside the job roots changed, no file on a target was lost that the
// source still has, and the job converges once the fault is gone.
//
// The helpers (mounts, the outside guard, faultCheck, agents run as
// another user) are meant for other fault tests too: stalled and hostile
// peers live in their own file and use them.

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"pbxsync/internal/config"
	"pbxsync/internal/identity"
	"pbxsync/internal/index"
	"pbxsync/internal/store"
	"pbxsync/internal/wire"
)

// mountBind bind-mounts src on dst and unmounts it when the test ends.
func mountBind(tb testing.TB, src, dst string) {
	tb.Helper()
	if err := unix.Mount(src, dst, "", unix.MS_BIND, ""); err != nil {
		tb.Fatalf("mount --bind %s %s: %v", src, dst, err)
	}
	tb.Cleanup(func() { unix.Unmount(dst, unix.MNT_DETACH) })
}

// remount makes the bind mount at dir read-only or read-write.
func remount(tb testing.TB, dir string, readOnly bool) {
	tb.Helper()
	flags := uintptr(unix.MS_REMOUNT | unix.MS_BIND)
	if readOnly {
		flags |= unix.MS_RDONLY
	}
	if err := unix.Mount("", dir, "", flags, ""); err != nil {
		tb.Fatalf("remount %s (read-only %v): %v", dir, readOnly, err)
	}
}

// mountTmpfs mounts a tmpfs of size bytes on dir and unmounts it when the
// test ends.
func mountTmpfs(tb testing.TB, dir string, size int64) {
	tb.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		tb.Fatal(err)
	}
	if err := unix.Mount("tmpfs", dir, "tmpfs", 0, fmt.Sprintf("size=%d,mode=0755", size)); err != nil {
		tb.Fatalf("mount tmpfs on %s: %v", dir, err)
	}
	tb.Cleanup(func() { unix.Unmount(dir, unix.MNT_DETACH) })
}

// outsideGuard is a directory beside the job roots, with files a job
// must never touch (symlinks in the trees point at it).
type outsideGuard struct {
	dir  string
	snap map[string]entry
}

func newOutsideGuard(tb testing.TB, h *harness) *outsideGuard {
	tb.Helper()
	g := &outsideGuard{dir: filepath.Join(h.base, "outside")}
	for rel, content := range map[string]string{"secret.conf": "outside the job root\n", "sub/deep.conf": "deep\n"} {
		p := filepath.Join(g.dir, filepath.FromSlash(rel))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			tb.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o640); err != nil {
			tb.Fatal(err)
		}
	}
	var err error
	if g.snap, err = snapshot(g.dir); err != nil {
		tb.Fatal(err)
	}
	return g
}

// check fails the test when anything below the guard changed.
func (g *outsideGuard) check(tb testing.TB) {
	tb.Helper()
	now, err := snapshot(g.dir)
	if err != nil {
		tb.Fatal(err)
	}
	if err := diffSnapshots(g.snap, now); err != nil {
		tb.Fatalf("a file outside the job roots changed: %v", err)
	}
}

func diffSnapshots(a, b map[string]entry) error {
	var diffs []string
	for p, x := range a {
		y, ok := b[p]
		if !ok || x.dir != y.dir || x.mode != y.mode || string(x.content) != string(y.content) || x.mtime != y.mtime {
			diffs = append(diffs, p)
		}
	}
	for p := range b {
		if _, ok := a[p]; !ok {
			diffs = append(diffs, p+" (new)")
		}
	}
	if len(diffs) > 0 {
		return errors.New(strings.Join(diffs, ", "))
	}
	return nil
}

// noLoss fails the test when a file the target held at fault start is gone
// from it while the source still has it.
func noLoss(tb testing.TB, before map[string]entry, src, tgt *tnode) {
	tb.Helper()
	for p, e := range before {
		if e.dir {
			continue
		}
		if _, err := os.Lstat(src.path(p)); err != nil {
			continue // the source removed it (or cannot see it)
		}
		if fi, err := os.Lstat(tgt.path(p)); err != nil || !fi.Mode().IsRegular() {
			tb.Fatalf("%s lost %s (the source still has it): %v", tgt.name, p, err)
		}
	}
}

// faultCheck takes the target's snapshot at fault start; its result,
// called once the fault is gone, asserts the three promises.
func faultCheck(tb testing.TB, g *outsideGuard, src *tnode, targets ...*tnode) func() {
	tb.Helper()
	before := make([]map[string]entry, len(targets))
	for i, t := range targets {
		var err error
		if before[i], err = snapshot(t.tree); err != nil {
			tb.Fatal(err)
		}
	}
	return func() {
		tb.Helper()
		g.check(tb)
		for i, t := range targets {
			noLoss(tb, before[i], src, t)
		}
		converged(tb, "converges once the fault is gone", src, targets...)
		g.check(tb)
	}
}

// generations returns the job's generation records on a running node.
func generations(tb testing.TB, n *tnode, job string) []store.GenerationInfo {
	tb.Helper()
	gens, err := n.a().store.Generations(job)
	if err != nil {
		tb.Fatal(err)
	}
	return gens
}

// stagedFiles lists what is left in the node's staging directories of job.
func stagedFiles(n *tnode, job string) []string {
	var out []string
	for _, d := range []string{filepath.Join(n.data, "staging", job), filepath.Join(n.tree, ".pbxsync-staging")} {
		ents, _ := os.ReadDir(d)
		for _, e := range ents {
			out = append(out, filepath.Join(d, e.Name()))
		}
	}
	return out
}

// noLeftovers waits until a failed apply on n is resolved: no journal,
// no staged file. (A retry may be running: it is caught between two.)
func noLeftovers(tb testing.TB, n *tnode, job string) {
	tb.Helper()
	eventually(tb, waitLimit, "the failed apply leaves no journal and no staged file", func() error {
		if _, ok, err := n.a().store.ReadJournal(job); ok || err != nil {
			return fmt.Errorf("journal present %v, err %v", ok, err)
		}
		if left := stagedFiles(n, job); len(left) > 0 {
			return fmt.Errorf("staged files: %v", left)
		}
		return nil
	})
}

// countLines counts the lines of the node's log that hold every one of subs.
func (n *tnode) countLines(subs ...string) int {
	c := 0
	for _, line := range strings.Split(n.log.String(), "\n") {
		all := true
		for _, s := range subs {
			if !strings.Contains(line, s) {
				all = false
				break
			}
		}
		if all {
			c++
		}
	}
	return c
}

// TestFaultBindMountedTargetRoot: the target's job root is a bind mount of
// a directory of the same filesystem (what systemd's ReadWritePaths
// makes): same device number, yet renames across it fail with EXDEV. The
// job must stage where a rename works, converge, and leak nothing.
func TestFaultBindMountedTargetRoot(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	g := newOutsideGuard(t, h)
	a, b := h.pair("")
	real := filepath.Join(h.base, "b", "real")
	if err := os.MkdirAll(real, 0o755); err != nil {
		t.Fatal(err)
	}
	mountBind(t, real, b.tree)
	a.write("extensions.conf", seedExtensions, 0o644)
	a.write("sip/peers.conf", "[100]\n", 0o640)
	b.write("stale.conf", "only on b\n", 0o644)
	check := faultCheck(t, g, a, b)
	a.start()
	b.start()
	check()
	for i := range 3 {
		a.write(fmt.Sprintf("n%d.conf", i), strings.Repeat("x", i*1000), 0o644)
		converged(t, fmt.Sprintf("change %d", i), a, b)
	}
	if left := stagedFiles(b, "conf"); len(left) > 0 {
		t.Errorf("staging leaked on the bind-mounted target: %v", left)
	}
	eventually(t, waitLimit, "every generation on b is good", func() error {
		for _, gi := range generations(t, b, "conf") {
			if gi.State == store.StateBad {
				t.Fatalf("generation %d is bad (%s): a bind mount made an apply fail", gi.Number, gi.Reason)
			}
			if gi.State != store.StateGood {
				return fmt.Errorf("generation %d is %s", gi.Number, gi.State)
			}
		}
		return nil
	})
	if b.logHas("cross-device") || b.logHas("invalid cross-device link") {
		t.Error("a rename failed across the bind mount")
	}
}

// TestFaultReadOnlyTargetRoot: the target's root turns read-only. Every
// apply fails; each failure is resolved at once (no journal, no staged
// file left), every retry reuses one generation record, nothing is lost,
// and once the root is writable again the job converges, also across a
// restart.
func TestFaultReadOnlyTargetRoot(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	g := newOutsideGuard(t, h)
	a, b := h.pair("")
	mountBind(t, b.tree, b.tree)
	a.write("extensions.conf", seedExtensions, 0o644)
	a.write("keep.conf", "kept\n", 0o644)
	a.start()
	b.start()
	converged(t, "initial sync", a, b)
	before := len(generations(t, b, "conf"))
	check := faultCheck(t, g, a, b)

	remount(t, b.tree, true)
	a.write("extensions.conf", seedExtensions+"exten => 200,1,Answer()\n", 0o644)
	a.write("new.conf", "new\n", 0o644)
	eventually(t, waitLimit, "b fails its apply three times", func() error {
		if n := b.countLines("apply failed; rolling back"); n < 3 {
			return fmt.Errorf("%d failed applies so far", n)
		}
		return nil
	})
	noLeftovers(t, b, "conf")
	// a's two writes may have become one generation or two; each retry
	// must reuse b's record of the one it retries
	if gens, srcGens := generations(t, b, "conf"), generations(t, a, "conf"); len(gens) <= before || len(gens) > len(srcGens) {
		t.Errorf("%d generation records after the retries, want %d to %d (at most one per generation of the source): %+v", len(gens), before+1, len(srcGens), gens)
	}

	remount(t, b.tree, false)
	check()
	b.restart()
	a.write("after.conf", "after the restart\n", 0o644)
	converged(t, "after a restart", a, b)
}

// TestFaultDiskFull: the target's job root lives on a small tmpfs that
// something outside the job filled. The apply finds that the change does
// not fit before it writes anything, says so, leaves nothing behind and
// waits for room instead of failing again at each of the source's
// repeats; once space is free the job converges.
func TestFaultDiskFull(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	g := newOutsideGuard(t, h)
	a, b := h.pair("")
	disk := filepath.Join(h.base, "b", "disk")
	mountTmpfs(t, disk, 4<<20)
	b.tree = filepath.Join(disk, "tree")
	if err := os.MkdirAll(b.tree, 0o755); err != nil {
		t.Fatal(err)
	}
	a.write("extensions.conf", seedExtensions, 0o644)
	a.start()
	b.start()
	converged(t, "initial sync", a, b)
	before := len(generations(t, b, "conf"))
	filler := filepath.Join(disk, "filler")
	fill, err := os.Create(filler)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(fill, io.LimitReader(zeroReader{}, 8<<20)) // until ENOSPC
	fill.Close()
	check := faultCheck(t, g, a, b)

	big := strings.Repeat("0123456789abcdef", 64<<10) // 1 MiB that zstd shrinks, the disk does not
	// in one rename: a file written in place can be seen empty first, and
	// that would be a generation of its own
	a.replace("big.txt", []byte(big), 0o644)
	// the target waits for room, and the source's row of it says so
	var waitingSince time.Time
	eventually(t, waitLimit, "a shows b waiting for room", func() error {
		js, _ := a.jobStatus("conf")
		for _, ts := range js.Targets {
			if p := ts.Progress; ts.Name == b.name && p != nil && p.Phase == wire.PhaseWaiting {
				if !strings.Contains(ts.Reason, "waiting for room on the file system") {
					return fmt.Errorf("b's row: reason %q", ts.Reason)
				}
				if waitingSince.IsZero() {
					waitingSince = p.At
				}
				return nil
			}
		}
		return fmt.Errorf("b's row: %+v", js.Targets)
	})
	eventually(t, waitLimit, "b's job waiting and unhealthy", func() error {
		if js, _ := b.jobStatus("conf"); js.State != stateWaitingForRoom {
			return fmt.Errorf("b's job state %q, want %q", js.State, stateWaitingForRoom)
		}
		if err := b.a().Healthy(context.Background()); err == nil || !strings.Contains(err.Error(), "not enough space") {
			return fmt.Errorf("b's health: %v, want the disk named", err)
		}
		return nil
	})
	js, _ := b.jobStatus("conf")
	for _, want := range []string{"not enough space on the file system of " + b.tree, "Nothing was written"} {
		if !strings.Contains(js.LastError, want) {
			t.Errorf("b's last error %q, want it to say %q", js.LastError, want)
		}
	}
	if js.Progress == nil || js.Progress.Phase != wire.PhaseWaiting || js.Progress.BytesTotal < 1<<20 {
		t.Errorf("b's progress while it waits: %+v, want phase %q and the 1 MiB it needs", js.Progress, wire.PhaseWaiting)
	}
	// it keeps waiting: the reports go on past several of the source's
	// repeat intervals (announceRepeat), which used to start an apply each
	eventually(t, waitLimit, "b reports its wait for a while", func() error {
		js, _ := a.jobStatus("conf")
		for _, ts := range js.Targets {
			if p := ts.Progress; ts.Name == b.name && p != nil && p.Phase == wire.PhaseWaiting && p.At.Sub(waitingSince) > 3*announceRepeat {
				return nil
			}
		}
		return fmt.Errorf("b's row: %+v", js.Targets)
	})
	if n, m := b.countLines("the generation does not fit on the file system"), b.countLines("apply failed; rolling back"); n != 1 || m != 0 {
		t.Errorf("b found %d times that the change does not fit and failed %d applies while the disk was full, want once and none", n, m)
	}
	noLeftovers(t, b, "conf")
	if gens := generations(t, b, "conf"); len(gens) != before+1 {
		t.Errorf("%d generation records after the wait, want %d", len(gens), before+1)
	}
	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	check()
	if n, m := b.countLines("the generation does not fit on the file system"), b.countLines("apply failed; rolling back"); n != 1 || m != 0 {
		t.Errorf("b found %d times that the change does not fit and failed %d applies in all, want once and none: once there was room the next try must take the change", n, m)
	}
}

func freeTCPPort(tb testing.TB) int {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

type zeroReader struct{}

func (zeroReader) Read(p []byte) (int, error) {
	clear(p)
	return len(p), nil
}

// Agents run as another user, for faults root does not meet (root reads a
// mode-0000 file): the test binary runs itself as that user, with
// TestHelperAgent as the entry point.

const helperAgentEnv = "PBXSYNC_TEST_AGENT_CONFIG"

// startAs runs the node's agent in a child process as uid/gid; its log
// goes to the node's log. The node's directories are given to that user,
// but for the paths of its tree in rootOnly.
func (n *tnode) startAs(uid, gid int, rootOnly ...string) {
	tb := n.h.tb
	tb.Helper()
	// the test binary and the path to the node must be reachable
	for d := n.h.base; d != "/" && d != os.TempDir(); d = filepath.Dir(d) {
		if err := os.Chmod(d, 0o755); err != nil {
			tb.Fatal(err)
		}
	}
	bin := filepath.Join(n.h.base, "agent.test")
	if _, err := os.Stat(bin); err != nil {
		self, err := os.ReadFile(os.Args[0])
		if err != nil {
			tb.Fatal(err)
		}
		if err := os.WriteFile(bin, self, 0o755); err != nil {
			tb.Fatal(err)
		}
	}
	file := filepath.Join(n.h.base, n.name, "pbxsync.toml")
	if err := os.WriteFile(file, []byte(n.configText()), 0o644); err != nil {
		tb.Fatal(err)
	}
	for _, d := range []string{n.data, n.tree} {
		if err := filepath.Walk(d, func(p string, _ os.FileInfo, err error) error {
			if err != nil {
				return err
			}
			for _, r := range rootOnly {
				if p == n.path(r) {
					return nil
				}
			}
			return os.Lchown(p, uid, gid)
		}); err != nil {
			tb.Fatal(err)
		}
	}
	cmd := exec.Command(bin, "-test.run=^TestHelperAgent$", "-test.count=1")
	cmd.Env = append(childEnv(), helperAgentEnv+"="+file)
	cmd.Stdout, cmd.Stderr = n.log, n.log
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}}
	if err := cmd.Start(); err != nil {
		tb.Fatal(err)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	tb.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(waitLimit):
			cmd.Process.Kill()
			<-done
		}
	})
}

// TestHelperAgent is the child of startAs: it runs an agent from the
// config file named in its environment until SIGTERM. It does nothing in
// a normal test run.
func TestHelperAgent(t *testing.T) {
	file := os.Getenv(helperAgentEnv)
	if file == "" {
		return // not a child of startAs: nothing to do
	}
	text, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Parse(file, text)
	if err != nil {
		t.Fatal(err)
	}
	id, err := identity.LoadOrCreate(cfg.Node.DataDir)
	if err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug})).With("node", cfg.Node.Name)
	a, err := New(Options{Config: cfg, Identity: id, Log: log, Version: "test"})
	if err != nil {
		t.Fatal(err)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM)
	defer stop()
	if cfg.Node.HTTP != "" {
		// what internal/httpapi's /healthz answers (it imports this
		// package, so a test here cannot use it)
		mux := http.NewServeMux()
		mux.HandleFunc("/healthz", func(w http.ResponseWriter, r *http.Request) {
			if err := a.Healthy(r.Context()); err != nil {
				http.Error(w, "unhealthy: "+err.Error(), http.StatusServiceUnavailable)
				return
			}
			fmt.Fprintln(w, "ok")
		})
		srv := &http.Server{Addr: cfg.Node.HTTP, Handler: mux, ReadHeaderTimeout: 5 * time.Second}
		go srv.ListenAndServe()
		defer srv.Close()
	}
	if err := a.Run(ctx); err != nil && !errors.Is(err, context.Canceled) {
		t.Fatal(err)
	}
	os.Exit(0)
}

// TestFaultUnreadableSourceFile: the source agent runs as an unprivileged
// user and meets a file it cannot read: a new one, and one it synced
// before. Its targets keep everything (the synced one at its last synced
// content), a readable change beside them still syncs, the agent names
// the files, and once they are readable they sync.
func TestFaultUnreadableSourceFile(t *testing.T) {
	t.Parallel()
	const nobody = 65534
	h := newHarness(t)
	g := newOutsideGuard(t, h)
	a, b := h.pair("")
	for i := 1; i <= 3; i++ {
		a.write(fmt.Sprintf("f%d.conf", i), fmt.Sprintf("exten => %d,1,Answer()\n", i), 0o644)
	}
	a.write("sub/inner.conf", "inner\n", 0o644)
	// a file the source could never read, which the target has
	a.write("pre.conf", "pre on a\n", 0o600)
	b.write("pre.conf", "pre on b\n", 0o640)
	healthz := fmt.Sprintf("127.0.0.1:%d", freeTCPPort(t))
	a.Node = fmt.Sprintf("http = %q\n", healthz)
	a.startAs(nobody, nobody, "pre.conf")
	b.start()
	eventually(t, waitLimit, "initial sync", func() error {
		for _, p := range []string{"f1.conf", "f2.conf", "f3.conf", "sub/inner.conf"} {
			if _, err := os.Stat(b.path(p)); err != nil {
				return err
			}
		}
		return nil
	})
	if got := string(b.read("pre.conf")); got != "pre on b\n" {
		t.Fatalf("b's pre.conf, which the source cannot read, is %q: a source's failure to read made a target delete or change it", got)
	}
	check := faultCheck(t, g, a, b)
	synced := string(b.read("f2.conf"))

	a.write("root-only.conf", "secret\n", 0o600)
	a.write("f2.conf", "changed while unreadable\n", 0o600)
	for _, p := range []string{"root-only.conf", "f2.conf"} {
		if err := os.Chown(a.path(p), 0, 0); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Chmod(a.path("sub"), 0o700); err != nil { // a directory it cannot list
		t.Fatal(err)
	}
	if err := os.Chown(a.path("sub"), 0, 0); err != nil {
		t.Fatal(err)
	}
	a.write("f4.conf", "exten => 4,1,Answer()\n", 0o644)
	if err := os.Chown(a.path("f4.conf"), nobody, nobody); err != nil {
		t.Fatal(err)
	}
	eventually(t, waitLimit, "the readable change syncs", func() error {
		if _, err := os.Stat(b.path("f4.conf")); err != nil {
			return err
		}
		return nil
	})
	for _, p := range []string{"f1.conf", "f2.conf", "f3.conf", "sub/inner.conf"} {
		if _, err := os.Stat(b.path(p)); err != nil {
			t.Fatalf("target lost %s after the source met an unreadable file: %v", p, err)
		}
	}
	if got := string(b.read("f2.conf")); got != synced {
		t.Errorf("f2.conf on the target = %q, want its last synced content %q", got, synced)
	}
	eventually(t, waitLimit, "the source names what it cannot read", func() error {
		for _, p := range []string{"root-only.conf", "f2.conf", "sub"} {
			if !a.logHas("cannot read", "path="+p) {
				return fmt.Errorf("%s is not named in the source's log", p)
			}
		}
		return nil
	})

	if _, err := os.Stat(b.path("pre.conf")); err != nil {
		t.Fatalf("b lost pre.conf: %v", err)
	}
	eventually(t, waitLimit, "/healthz names what the source cannot read", func() error {
		resp, err := http.Get("http://" + healthz + "/healthz")
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		if resp.StatusCode == http.StatusOK || !strings.Contains(string(body), "root-only.conf") {
			return fmt.Errorf("/healthz: %d %s", resp.StatusCode, body)
		}
		return nil
	})
	for _, p := range []string{"root-only.conf", "f2.conf", "sub", "pre.conf"} {
		if err := os.Chown(a.path(p), nobody, nobody); err != nil {
			t.Fatal(err)
		}
	}
	check()
}

// fsImmutableFL is FS_IMMUTABLE_FL of linux/fs.h (x/sys/unix lacks it).
const fsImmutableFL = 0x00000010

// setImmutable sets or clears the immutable attribute (chattr +i) of dir:
// not even root can create, rename or remove entries in it.
func setImmutable(tb testing.TB, dir string, on bool) {
	tb.Helper()
	f, err := os.Open(dir)
	if err != nil {
		tb.Fatal(err)
	}
	defer f.Close()
	flags, err := unix.IoctlGetUint32(int(f.Fd()), unix.FS_IOC_GETFLAGS)
	if err != nil {
		tb.Fatalf("get flags of %s: %v", dir, err)
	}
	if on {
		flags |= fsImmutableFL
	} else {
		flags &^= fsImmutableFL
	}
	if err := unix.IoctlSetPointerInt(int(f.Fd()), unix.FS_IOC_SETFLAGS, int(flags)); err != nil {
		tb.Fatalf("set flags of %s: %v", dir, err)
	}
	if on {
		tb.Cleanup(func() { setImmutable(tb, dir, false) })
	}
}

// TestFaultImmutableTargetDir: a directory of the target's tree refuses
// every rename (chattr +i), so an apply fails after its journal is
// written. The failed apply must end with its journal resolved: a restart
// (while the fault lasts, and after) neither fails nor rolls the failed
// generation into the tree behind the job's back, and the job converges
// once the directory is writable.
func TestFaultImmutableTargetDir(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	g := newOutsideGuard(t, h)
	a, b := h.pair("")
	a.write("extensions.conf", seedExtensions, 0o644)
	a.write("sip/peers.conf", "[100]\n", 0o640)
	a.start()
	b.start()
	converged(t, "initial sync", a, b)
	check := faultCheck(t, g, a, b)
	setImmutable(t, b.path("sip"), true)
	a.write("sip/peers.conf", "[100]\n[200]\n", 0o640)
	a.write("sip/new.conf", "new\n", 0o640)
	eventually(t, waitLimit, "b fails its apply twice", func() error {
		if n := b.countLines("apply failed; rolling back"); n < 2 {
			return fmt.Errorf("%d failed applies so far", n)
		}
		return nil
	})
	noLeftovers(t, b, "conf")
	b.restart() // while the fault lasts: the job must start
	eventually(t, waitLimit, "b's job runs after the restart", func() error {
		st, ok := b.jobStatus("conf")
		if !ok || st.State == "starting" {
			return fmt.Errorf("job state %+v", st)
		}
		return nil
	})
	setImmutable(t, b.path("sip"), false)
	check()
}

// TestFaultFileDirectorySwaps: paths change kind on the source (file to
// directory and back), and once the target holds a file the job does not
// sync inside a directory the source turns into a file, so that apply
// cannot finish until the file is gone.
func TestFaultFileDirectorySwaps(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	g := newOutsideGuard(t, h)
	a, b := h.pair("")
	a.write("extensions.conf", seedExtensions, 0o644)
	a.write("fd", "a file first\n", 0o644)
	a.write("df/inner.conf", "a directory first\n", 0o644)
	a.start()
	b.start()
	converged(t, "initial sync", a, b)
	swap := func(rel string, toDir bool) {
		t.Helper()
		if err := os.RemoveAll(a.path(rel)); err != nil {
			t.Fatal(err)
		}
		if toDir {
			a.write(rel+"/inner.conf", "now a directory\n", 0o644)
		} else {
			a.write(rel, "now a file\n", 0o644)
		}
	}
	check := faultCheck(t, g, a, b)
	swap("fd", true)
	swap("df", false)
	converged(t, "kinds swapped", a, b)
	swap("fd", false)
	swap("df", true)
	// the swaps are the source's own changes: converged first, then the
	// three promises
	converged(t, "kinds swapped back", a, b)
	check()

	// b holds an editor swap file (never synced) in df: when df becomes a
	// file on the source, b's df cannot go
	b.write("df/.inner.conf.swp", "vim\n", 0o600)
	check = faultCheck(t, g, a, b)
	swap("df", false)
	eventually(t, waitLimit, "b fails its apply and rolls back", func() error {
		// the generation is marked bad once the tree is restored (the
		// failure itself is logged before the rollback)
		if !b.logHas("generation state", "state=bad", "apply failed") {
			return errors.New("no failed apply rolled back yet")
		}
		return nil
	})
	noLeftovers(t, b, "conf")
	if _, err := os.Stat(b.path("df/inner.conf")); err != nil {
		t.Errorf("b's df/inner.conf is not restored after the failed apply: %v", err)
	}
	a.write("other.conf", "x\n", 0o644)
	if err := os.Remove(b.path("df/.inner.conf.swp")); err != nil {
		t.Fatal(err)
	}
	check()
}

// TestFaultSymlinkSwapsDuringScanAndApply: while the source keeps
// changing files, a local user on the source swaps a file and a directory
// of the job for symlinks to a secret outside the root and back, and a
// local user on the target does the same to a directory being written
// into. Neither the secret nor anything outside the roots may move; once
// the swapping stops the job converges.
func TestFaultSymlinkSwapsDuringScanAndApply(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	g := newOutsideGuard(t, h)
	a, b := h.pair("")
	a.write("extensions.conf", seedExtensions, 0o644)
	a.write("sw.conf", "plain\n", 0o644)
	a.write("swdir/in.conf", "in\n", 0o644)
	a.write("sub/x.conf", "x0\n", 0o644)
	a.start()
	b.start()
	converged(t, "initial sync", a, b)
	check := faultCheck(t, g, a, b)
	secret, err := os.ReadFile(filepath.Join(g.dir, "secret.conf"))
	if err != nil {
		t.Fatal(err)
	}

	ctx, stop := context.WithTimeout(context.Background(), 4*time.Second)
	defer stop()
	done := make(chan struct{}, 3)
	// on the source: a file and a directory become links to the secret
	go func() {
		defer func() { done <- struct{}{} }()
		aside := filepath.Join(h.base, "a", "aside")
		for i := 0; ctx.Err() == nil; i++ {
			os.Remove(a.path("sw.conf"))
			os.Symlink(filepath.Join(g.dir, "secret.conf"), a.path("sw.conf"))
			os.Rename(a.path("swdir"), aside)
			os.Symlink(g.dir, a.path("swdir"))
			time.Sleep(time.Duration(1+i%7) * time.Millisecond)
			os.Remove(a.path("sw.conf"))
			os.WriteFile(a.path("sw.conf"), []byte(fmt.Sprintf("plain %d\n", i)), 0o644)
			os.Remove(a.path("swdir"))
			os.Rename(aside, a.path("swdir"))
			time.Sleep(time.Duration(1+i%5) * time.Millisecond)
		}
	}()
	// on the target: the directory being written into becomes a link
	go func() {
		defer func() { done <- struct{}{} }()
		aside := filepath.Join(h.base, "b", "aside")
		for i := 0; ctx.Err() == nil; i++ {
			if os.Rename(b.path("sub"), aside) == nil {
				os.Symlink(g.dir, b.path("sub"))
				time.Sleep(time.Duration(1+i%7) * time.Millisecond)
				if fi, err := os.Lstat(b.path("sub")); err == nil && fi.Mode()&os.ModeSymlink != 0 {
					os.Remove(b.path("sub"))
					os.Rename(aside, b.path("sub"))
				} else {
					os.RemoveAll(aside) // an apply made sub a real directory again
				}
			}
			time.Sleep(time.Duration(1+i%5) * time.Millisecond)
		}
	}()
	// the source keeps changing what the target writes
	go func() {
		defer func() { done <- struct{}{} }()
		for i := 1; ctx.Err() == nil; i++ {
			os.WriteFile(a.path("sub/x.conf"), []byte(fmt.Sprintf("x%d\n", i)), 0o644)
			time.Sleep(20 * time.Millisecond)
		}
	}()
	for range 3 {
		<-done
	}
	g.check(t)
	for _, n := range []*tnode{a, b} {
		if n.a().store.Has(index.Sum(secret)) {
			t.Fatalf("the secret outside the root reached %s's store", n.name)
		}
	}
	a.write("final.conf", "after the swaps\n", 0o644)
	// the swaps are real changes on the source (a directory that became a
	// link is gone from the job), so a target may drop a file the source
	// re-creates later: the loss check holds once the job converged
	converged(t, "converges after the swaps", a, b)
	check()
	snap, err := snapshot(b.tree)
	if err != nil {
		t.Fatal(err)
	}
	for p, e := range snap {
		if string(e.content) == string(secret) {
			t.Fatalf("the secret reached the target at %s", p)
		}
	}
}

// TestSourceNeverReadsThroughASymlink: a file the source scanned is then
// swapped for a symlink to a secret outside the root (or its directory is):
// reading it for the store fails instead of storing the secret, which
// would then be shipped to every target. Deterministic: the swap happens
// between the scan and the read on purpose.
func TestSourceNeverReadsThroughASymlink(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	g := newOutsideGuard(t, h)
	a, _ := h.pair("")
	a.write("f.conf", "plain\n", 0o644)
	a.write("d/secret.conf", "inside\n", 0o644)
	a.start()
	var j *job
	for _, x := range a.a().allJobs() {
		j = x
	}
	secret, err := os.ReadFile(filepath.Join(g.dir, "secret.conf"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(a.path("f.conf")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Join(g.dir, "secret.conf"), a.path("f.conf")); err != nil {
		t.Fatal(err)
	}
	if err := os.RemoveAll(a.path("d")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(g.dir, a.path("d")); err != nil {
		t.Fatal(err)
	}
	for _, rel := range []string{"f.conf", "d/secret.conf"} {
		if _, _, err := j.storeFile(context.Background(), rel); err == nil {
			t.Errorf("the source read %s through a symlink", rel)
		}
	}
	if a.a().store.Has(index.Sum(secret)) {
		t.Fatal("the secret outside the root reached the source's store")
	}
	g.check(t)
}
