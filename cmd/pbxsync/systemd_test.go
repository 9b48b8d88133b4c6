package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"pbxsync/internal/control"
	"pbxsync/internal/identity"
	"pbxsync/internal/testport"
	"pbxsync/internal/testwait"
)

// helperEnv makes TestPbxsyncHelperProcess act as the pbxsync binary.
const helperEnv = "PBXSYNC_TEST_HELPER_PROCESS"

// TestPbxsyncHelperProcess is not a test: when helperEnv is set it runs the
// pbxsync command line after "--" (what main does) and exits. The systemd
// test starts this test binary as its child process that way, so the agent
// runs as a separate process, with the same code as the real binary and
// with the race detector when the tests have it, without a `go build`.
func TestPbxsyncHelperProcess(t *testing.T) {
	if os.Getenv(helperEnv) != "1" {
		return
	}
	args := os.Args
	for i, a := range args {
		if a == "--" {
			args = args[i+1:]
			break
		}
	}
	os.Exit(run(args, os.Stdout, os.Stderr))
}

// syncBuffer is a bytes.Buffer safe for the exec package's copying
// goroutine and the test reading it.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// notifySocket is a NOTIFY_SOCKET as systemd provides it: a unixgram
// socket; every datagram is one notification of newline-separated
// VAR=VALUE assignments.
type notifySocket struct {
	path string
	conn *net.UnixConn
	msgs chan string
}

func listenNotify(t *testing.T, dir string) *notifySocket {
	t.Helper()
	path := filepath.Join(dir, "notify.sock")
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	n := &notifySocket{path: path, conn: conn, msgs: make(chan string, 10000)}
	go func() {
		buf := make([]byte, 4096)
		for {
			k, err := conn.Read(buf)
			if err != nil {
				close(n.msgs)
				return
			}
			n.msgs <- string(buf[:k])
		}
	}()
	t.Cleanup(func() { conn.Close() })
	return n
}

// next returns the next notification that is not a plain WATCHDOG=1 ping
// or a STATUS= text. It fails the test after timeout.
func (n *notifySocket) next(t *testing.T, timeout time.Duration) string {
	t.Helper()
	deadline := time.After(timeout)
	for {
		select {
		case m, ok := <-n.msgs:
			if !ok {
				t.Fatal("notify socket closed")
			}
			if m == "WATCHDOG=1" || statusOnly(m) {
				continue
			}
			return m
		case <-deadline:
			t.Fatalf("no notification other than WATCHDOG=1 within %v", timeout)
			return ""
		}
	}
}

// statusOnly reports whether m only sets STATUS= (free text for
// `systemctl status`), which the test ignores.
func statusOnly(m string) bool {
	for _, line := range strings.Split(m, "\n") {
		if !strings.HasPrefix(line, "STATUS=") {
			return false
		}
	}
	return true
}

// expect fails unless the next notification other than WATCHDOG=1 holds
// the assignment want (e.g. "READY=1").
func (n *notifySocket) expect(t *testing.T, want string, timeout time.Duration) {
	t.Helper()
	m := n.next(t, timeout)
	for _, line := range strings.Split(m, "\n") {
		if line == want {
			return
		}
	}
	t.Fatalf("notification %q, want %s", m, want)
}

// watchdogs waits until count WATCHDOG=1 pings arrived; any other
// notification meanwhile fails the test.
func (n *notifySocket) watchdogs(t *testing.T, count int, timeout time.Duration) {
	t.Helper()
	deadline := time.After(timeout)
	got := 0
	for got < count {
		select {
		case m, ok := <-n.msgs:
			if !ok {
				t.Fatal("notify socket closed")
			}
			switch {
			case m == "WATCHDOG=1":
				got++
			case statusOnly(m):
			default:
				t.Fatalf("notification %q while waiting for WATCHDOG=1", m)
			}
		case <-deadline:
			t.Fatalf("%d WATCHDOG=1 pings within %v, want %d", got, timeout, count)
		}
	}
}

// testPorts hands out the agents' ports (see testport: a port picked by
// binding ":0" could be taken again before the agent started, with tests
// running in parallel).
var testPorts testport.Ports

// freeUDPPort returns a UDP port on 127.0.0.1 that was free a moment ago.
func freeUDPPort(t *testing.T) int {
	t.Helper()
	return testPorts.UDP(t)
}

// waitLog waits until the child's log holds s.
func waitLog(t *testing.T, log *syncBuffer, s string, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !strings.Contains(log.String(), s) {
		if time.Now().After(deadline) {
			t.Fatalf("log does not contain %q after %v; log:\n%s", s, timeout, log.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// statusJobs asks the agent over its control socket for the names of its jobs.
func statusJobs(t *testing.T, dataDir string) []string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), testwait.Limit())
	defer cancel()
	resp, err := control.Call(ctx, control.SocketPath(dataDir), control.Request{Cmd: "status"})
	if err != nil {
		t.Fatalf("status: %v", err)
	}
	var st struct {
		Jobs []struct {
			Name string `json:"name"`
		} `json:"jobs"`
	}
	if err := json.Unmarshal(resp.Status, &st); err != nil {
		t.Fatalf("status: %v in %s", err, resp.Status)
	}
	var names []string
	for _, j := range st.Jobs {
		names = append(names, j.Name)
	}
	return names
}

// TestSystemdNotify runs `pbxsync run` as systemd would for a Type=notify
// service with WatchdogSec= (NOTIFY_SOCKET, WATCHDOG_USEC and WATCHDOG_PID
// set to the agent's own PID) and follows what it tells systemd through a
// start, a valid reload, an invalid reload and a stop.
func TestSystemdNotify(t *testing.T) {
	t.Parallel()
	sh, err := exec.LookPath("sh")
	if err != nil {
		t.Fatal("no sh to set WATCHDOG_PID to the agent's PID (the agent needs sh for checks anyway):", err)
	}
	dir := t.TempDir()
	dataDir := filepath.Join(dir, "data")
	tree1 := filepath.Join(dir, "tree1")
	tree2 := filepath.Join(dir, "tree2")
	for _, d := range []string{dataDir, tree1, tree2} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(tree1, "extensions.conf"), []byte("[default]\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	// A real ID for the peer, which never runs: the agent keeps trying to
	// reach it, which must not disturb readiness, watchdog or reload.
	peer, err := identity.LoadOrCreate(filepath.Join(dir, "peer"))
	if err != nil {
		t.Fatal(err)
	}
	base := fmt.Sprintf(`[node]
name = "n1"
listen = "127.0.0.1:%d"
data_dir = %q

[[peer]]
name = "n2"
address = "127.0.0.1:%d"
id = %q

[[job]]
name = "j1"
path = %q
source = "n1"
targets = ["n2"]
`, freeUDPPort(t), dataDir, freeUDPPort(t), peer.ID.String(), tree1)
	cfgPath := filepath.Join(dir, "pbxsync.toml")
	if err := os.WriteFile(cfgPath, []byte(base), 0o644); err != nil {
		t.Fatal(err)
	}

	notify := listenNotify(t, dir)

	// systemd sets WATCHDOG_PID to the main PID; the shell sets it to its
	// own PID and execs the agent, which keeps that PID. (go-systemd's
	// SdWatchdogEnabled returns 0 when WATCHDOG_PID names another process.)
	cmd := exec.Command(sh, "-c", `WATCHDOG_PID=$$; export WATCHDOG_PID; exec "$0" "$@"`,
		os.Args[0], "-test.run=^TestPbxsyncHelperProcess$", "--", "run", "--config", cfgPath)
	var env []string
	for _, e := range os.Environ() {
		switch strings.SplitN(e, "=", 2)[0] {
		case "NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID", helperEnv:
			continue
		}
		env = append(env, e)
	}
	cmd.Env = append(env, helperEnv+"=1", "NOTIFY_SOCKET="+notify.path, "WATCHDOG_USEC=400000")
	log := &syncBuffer{}
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	stopped := false
	t.Cleanup(func() {
		if !stopped {
			cmd.Process.Kill()
			<-exited
		}
		if t.Failed() {
			t.Logf("agent log:\n%s", log.String())
		}
	})
	signal := func(s os.Signal) {
		t.Helper()
		if err := cmd.Process.Signal(s); err != nil {
			t.Fatalf("signal %v: %v", s, err)
		}
	}

	// Start: READY=1, then WATCHDOG=1 every WATCHDOG_USEC/2 = 200ms.
	notify.expect(t, "READY=1", testwait.Limit())
	waitLog(t, log, "agent started", testwait.Limit())
	notify.watchdogs(t, 2, testwait.Limit())
	if got := statusJobs(t, dataDir); strings.Join(got, ",") != "j1" {
		t.Fatalf("jobs before reload: %v, want [j1]", got)
	}

	// A valid change: a second job. RELOADING=1, then READY=1, the log says
	// so, and the new job runs.
	valid := base + fmt.Sprintf(`
[[job]]
name = "j2"
path = %q
source = "n1"
targets = ["n2"]
`, tree2)
	if err := os.WriteFile(cfgPath, []byte(valid), 0o644); err != nil {
		t.Fatal(err)
	}
	signal(syscall.SIGHUP)
	notify.expect(t, "RELOADING=1", testwait.Limit())
	notify.expect(t, "READY=1", testwait.Limit())
	waitLog(t, log, "configuration reloaded", testwait.Limit())
	if got := statusJobs(t, dataDir); strings.Join(got, ",") != "j1,j2" {
		t.Fatalf("jobs after reload: %v, want [j1 j2]", got)
	}

	// An invalid change: an unknown key on line 5. The agent says
	// RELOADING=1 and READY=1 again, logs the error with FILE:LINE:COL,
	// keeps running on the old configuration and keeps pinging the watchdog.
	lines := strings.SplitAfter(valid, "\n")
	invalid := strings.Join(lines[:4], "") + "bogus = 1\n" + strings.Join(lines[4:], "")
	if err := os.WriteFile(cfgPath, []byte(invalid), 0o644); err != nil {
		t.Fatal(err)
	}
	signal(syscall.SIGHUP)
	notify.expect(t, "RELOADING=1", testwait.Limit())
	notify.expect(t, "READY=1", testwait.Limit())
	waitLog(t, log, "configuration reload refused", testwait.Limit())
	waitLog(t, log, cfgPath+`:5:1: unknown key \"node.bogus\"`, testwait.Limit())
	notify.watchdogs(t, 2, testwait.Limit())
	select {
	case err := <-exited:
		stopped = true
		t.Fatalf("agent exited after an invalid reload: %v", err)
	default:
	}
	if got := statusJobs(t, dataDir); strings.Join(got, ",") != "j1,j2" {
		t.Fatalf("jobs after the refused reload: %v, want the old [j1 j2]", got)
	}

	// Stop: SIGTERM, STOPPING=1, exit 0.
	signal(syscall.SIGTERM)
	notify.expect(t, "STOPPING=1", testwait.Limit())
	select {
	case err := <-exited:
		stopped = true
		if err != nil {
			var ee *exec.ExitError
			if errors.As(err, &ee) {
				t.Fatalf("agent exited with %v after SIGTERM, want status 0", ee.ProcessState)
			}
			t.Fatal(err)
		}
	case <-time.After(testwait.Limit()):
		t.Fatalf("agent still running %s after SIGTERM", testwait.Limit())
	}
	waitLog(t, log, "stopping", testwait.Limit())
}
