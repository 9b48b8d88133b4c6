package main

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// rsyncd is an rsync daemon on 127.0.0.1 serving one writable module
// "bench" rooted at dir.
type rsyncd struct {
	cmd  *exec.Cmd
	port int
	dir  string
	done chan error
}

// startRsyncd runs `rsync --daemon --no-detach` with a temporary
// rsyncd.conf under base, on a free port of 127.0.0.1.
func startRsyncd(ctx context.Context, base string) (*rsyncd, error) {
	d := &rsyncd{dir: filepath.Join(base, "module")}
	if err := os.MkdirAll(d.dir, 0o755); err != nil {
		return nil, err
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	d.port = l.Addr().(*net.TCPAddr).Port
	l.Close()
	conf := filepath.Join(base, "rsyncd.conf")
	text := fmt.Sprintf("pid file = %s\nuse chroot = no\nuid = root\ngid = root\n\n[bench]\npath = %s\nread only = no\n",
		filepath.Join(base, "rsyncd.pid"), d.dir)
	if err := os.WriteFile(conf, []byte(text), 0o644); err != nil {
		return nil, err
	}
	d.cmd = exec.Command("rsync", "--daemon", "--no-detach", "--address=127.0.0.1", "--port="+strconv.Itoa(d.port),
		"--config="+conf, "--log-file="+filepath.Join(base, "rsyncd.log"))
	if err := d.cmd.Start(); err != nil {
		return nil, fmt.Errorf("rsync --daemon: %w", err)
	}
	d.done = make(chan error, 1)
	go func() { d.done <- d.cmd.Wait() }()
	for start := time.Now(); ; {
		c, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", d.port), time.Second)
		if err == nil {
			c.Close()
			return d, nil
		}
		select {
		case e := <-d.done:
			return nil, fmt.Errorf("rsync --daemon exited: %v (log %s)", e, filepath.Join(base, "rsyncd.log"))
		case <-ctx.Done():
			d.stop()
			return nil, ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
		if time.Since(start) > time.Minute {
			d.stop()
			return nil, fmt.Errorf("rsync --daemon does not listen on port %d", d.port)
		}
	}
}

// url is the daemon's URL of rel inside the module.
func (d *rsyncd) url(rel string) string {
	return fmt.Sprintf("rsync://127.0.0.1:%d/bench/%s", d.port, rel)
}

// stop ends the daemon and returns its peak RSS in bytes, its children's
// (the per-connection receivers) included: Linux's wait4 reports the
// largest of a process and its reaped descendants.
func (d *rsyncd) stop() int64 {
	rss, _ := d.stopUsage()
	return rss
}

// stopUsage ends the daemon and returns its peak RSS in bytes and its CPU
// time (user and system, its connection's child process included: the
// daemon waits for it).
func (d *rsyncd) stopUsage() (int64, time.Duration) {
	d.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-d.done:
	case <-time.After(30 * time.Second):
		d.cmd.Process.Kill()
		<-d.done
	}
	if ru, ok := d.cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
		return ru.Maxrss << 10, cpuOf(ru)
	}
	return 0, 0
}

// cpuOf is the user and system time in ru.
func cpuOf(ru *syscall.Rusage) time.Duration {
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// rsyncRun is one rsync client run.
type rsyncRun struct {
	wall           time.Duration
	maxRSS         int64         // the client's, bytes
	cpu            time.Duration // the client's user and system time
	sent, received int64         // --stats "Total bytes sent/received"
}

var rsyncStat = regexp.MustCompile(`Total bytes (sent|received): ([0-9,.]+)`)

// rsync runs the rsync client with args and parses --stats when given.
func rsync(ctx context.Context, args ...string) (rsyncRun, error) {
	var r rsyncRun
	var out bytes.Buffer
	cmd := exec.CommandContext(ctx, "rsync", args...)
	cmd.Stdout, cmd.Stderr = &out, &out
	t0 := time.Now()
	err := cmd.Run()
	r.wall = time.Since(t0)
	if err != nil {
		return r, fmt.Errorf("rsync %s: %w: %s", strings.Join(args, " "), err, out.String())
	}
	if ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
		r.maxRSS = ru.Maxrss << 10
		r.cpu = cpuOf(ru)
	}
	for _, m := range rsyncStat.FindAllStringSubmatch(out.String(), -1) {
		n, _ := strconv.ParseInt(strings.NewReplacer(",", "", ".", "").Replace(m[2]), 10, 64)
		if m[1] == "sent" {
			r.sent = n
		} else {
			r.received = n
		}
	}
	return r, nil
}

// rsyncVersion is the first line of `rsync --version`.
func rsyncVersion() string {
	out, err := exec.Command("rsync", "--version").Output()
	if err != nil {
		return "rsync not found"
	}
	first, _, _ := strings.Cut(string(out), "\n")
	return strings.Join(strings.Fields(first), " ")
}
