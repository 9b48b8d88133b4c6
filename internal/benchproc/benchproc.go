// Package benchproc runs pbxsync agents as their own processes for the
// whole-system benchmarks (internal/benchscale, internal/benchfed): start
// from a config file with the log in a file, stop with SIGTERM or kill,
// resident memory from /proc, status over the control socket. It also
// holds the small helpers both share (a free UDP port, the load average,
// building the binary).
package benchproc

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"pbxsync/internal/control"
	"pbxsync/syncer"
)

// Agent is one pbxsync agent run as `pbxsync run --config Config`.
type Agent struct {
	Name   string
	Dir    string   // its log is Dir/agent.log
	Data   string   // its data_dir (where its control socket is)
	Config string   // its config file
	Env    []string // added to its environment (e.g. PBXSYNC_PPROF=…)

	cmd  *exec.Cmd
	done chan error
}

// Start runs the agent from binary bin.
func (a *Agent) Start(bin string) error {
	logf, err := os.OpenFile(filepath.Join(a.Dir, "agent.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	a.cmd = exec.Command(bin, "run", "--config", a.Config)
	if len(a.Env) > 0 {
		a.cmd.Env = append(os.Environ(), a.Env...)
	}
	a.cmd.Stdout, a.cmd.Stderr = logf, logf
	if err := a.cmd.Start(); err != nil {
		logf.Close()
		a.cmd = nil
		return fmt.Errorf("start %s: %w", a.Name, err)
	}
	a.done = make(chan error, 1)
	go func() { a.done <- a.cmd.Wait(); logf.Close() }()
	return nil
}

// Stop ends the agent with SIGTERM (SIGKILL after two minutes); a no-op
// when it does not run.
func (a *Agent) Stop() {
	if a.cmd == nil {
		return
	}
	a.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-a.done:
	case <-time.After(2 * time.Minute):
		a.cmd.Process.Kill()
		<-a.done
	}
	a.cmd = nil
}

// Kill ends the agent with SIGKILL, as a crash would.
func (a *Agent) Kill() {
	if a.cmd == nil {
		return
	}
	a.cmd.Process.Kill()
	<-a.done
	a.cmd = nil
}

// Exited returns an error naming the agent's log when it stopped on its
// own, nil while it runs (or was never started).
func (a *Agent) Exited() error {
	if a.cmd == nil {
		return nil
	}
	select {
	case e := <-a.done:
		a.done <- e
		return fmt.Errorf("%s exited: %v (log %s)", a.Name, e, filepath.Join(a.Dir, "agent.log"))
	default:
		return nil
	}
}

// Pid is the agent's process ID, 0 when it does not run.
func (a *Agent) Pid() int {
	if a.cmd == nil {
		return 0
	}
	return a.cmd.Process.Pid
}

// procStatus returns the fields of /proc/PID/status that are sizes in kB,
// in bytes.
func (a *Agent) procStatus() map[string]int64 {
	out := map[string]int64{}
	if a.cmd == nil {
		return out
	}
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", a.cmd.Process.Pid))
	if err != nil {
		return out
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, _ := strings.Cut(sc.Text(), ":")
		v = strings.TrimSpace(v)
		if kb, ok := strings.CutSuffix(v, " kB"); ok {
			n, _ := strconv.ParseInt(kb, 10, 64)
			out[k] = n << 10
		}
	}
	return out
}

// Memory returns the agent's peak (VmHWM) and current (VmRSS) resident
// set in bytes; 0, 0 when it does not run.
func (a *Agent) Memory() (peak, now int64) {
	s := a.procStatus()
	return s["VmHWM"], s["VmRSS"]
}

// CPUTime returns the user and system CPU time the agent has used so
// far (/proc/PID/stat, in clock ticks of 10 ms); 0 when it does not run.
func (a *Agent) CPUTime() time.Duration {
	if a.cmd == nil {
		return 0
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", a.cmd.Process.Pid))
	if err != nil {
		return 0
	}
	// the fields after the command name, which is in parentheses
	_, rest, ok := strings.Cut(string(b), ") ")
	f := strings.Fields(rest)
	if !ok || len(f) < 13 {
		return 0
	}
	utime, _ := strconv.ParseInt(f[11], 10, 64)
	stime, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(utime+stime) * 10 * time.Millisecond
}

// IO returns the bytes the agent has read through read(2) and its
// relatives (rchar of /proc/PID/io: files, sockets and pipes, cached or
// not) and how many such calls it made (syscr); 0, 0 when it does not
// run.
func (a *Agent) IO() (rchar, syscr int64) {
	if a.cmd == nil {
		return 0, 0
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/io", a.cmd.Process.Pid))
	if err != nil {
		return 0, 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		k, v, _ := strings.Cut(line, ": ")
		n, _ := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
		switch k {
		case "rchar":
			rchar = n
		case "syscr":
			syscr = n
		}
	}
	return rchar, syscr
}

// RSSSplit returns the agent's resident memory by kind: anonymous (the Go
// heap, stacks) and file-backed (the store's mmap, the binary).
func (a *Agent) RSSSplit() (anon, file int64) {
	s := a.procStatus()
	return s["RssAnon"], s["RssFile"]
}

// StatusJSON asks the agent for its status over its control socket (what
// `pbxsync status --json` prints).
func (a *Agent) StatusJSON(ctx context.Context) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	resp, err := control.Call(ctx, control.SocketPath(a.Data), control.Request{Cmd: "status"})
	if err != nil {
		return nil, fmt.Errorf("%s: status: %w", a.Name, err)
	}
	return resp.Status, nil
}

// Status is StatusJSON decoded.
func (a *Agent) Status(ctx context.Context) (*syncer.Status, error) {
	raw, err := a.StatusJSON(ctx)
	if err != nil {
		return nil, err
	}
	var st syncer.Status
	if err := json.Unmarshal(raw, &st); err != nil {
		return nil, fmt.Errorf("%s: status: %w", a.Name, err)
	}
	return &st, nil
}

// Job returns the agent's status of one job.
func (a *Agent) Job(ctx context.Context, job string) (*syncer.JobStatus, error) {
	st, err := a.Status(ctx)
	if err != nil {
		return nil, err
	}
	for i := range st.Jobs {
		if st.Jobs[i].Name == job {
			return &st.Jobs[i], nil
		}
	}
	return nil, fmt.Errorf("%s: no job %q in status", a.Name, job)
}

// ID creates the node identity in dataDir if missing and returns the
// node ID (`pbxsync id`).
func ID(ctx context.Context, bin, dataDir string) (string, error) {
	out, err := exec.CommandContext(ctx, bin, "id", "--data-dir", dataDir).Output()
	if err != nil {
		return "", fmt.Errorf("pbxsync id --data-dir %s: %w", dataDir, err)
	}
	return strings.TrimSpace(string(out)), nil
}

// Build builds ./cmd/pbxsync into dir and returns the binary's path. It
// builds it as the Debian package does, static (CGO_ENABLED=0): the
// binary linked against libc had 1.3-1.5 MiB more RSS (libc and the
// loader mapped), idle and at the peak, than the one admins run.
func Build(ctx context.Context, dir string) (string, error) {
	bin := filepath.Join(dir, "pbxsync")
	b := exec.CommandContext(ctx, "go", "build", "-o", bin, "pbxsync/cmd/pbxsync")
	b.Env = append(os.Environ(), "CGO_ENABLED=0")
	b.Stdout, b.Stderr = os.Stderr, os.Stderr
	if err := b.Run(); err != nil {
		return "", fmt.Errorf("go build pbxsync/cmd/pbxsync: %w", err)
	}
	return bin, nil
}

// LoadAvg returns the 1, 5 and 15 minute load averages as /proc/loadavg
// has them, "?" when it cannot be read.
func LoadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], " ")
}
