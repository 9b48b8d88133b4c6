// Package shell runs the admin's shell commands (checks, hooks, shell
// actions) the one way pbxsync runs them: `/bin/sh -c` in a given
// directory, with extra environment, a timeout that kills the whole process
// group, and the command's output kept for the error message.
package shell

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"time"
)

// Result is what a finished command left.
type Result struct {
	Output   string        // combined stdout and stderr, at most MaxOutput bytes (the end is kept)
	Duration time.Duration // how long it ran
}

// MaxOutput bounds the output kept from a command.
const MaxOutput = 64 << 10

// ErrTimeout is wrapped when a command ran out of time.
var ErrTimeout = errors.New("timed out")

// Run runs command with /bin/sh -c in dir (the current directory when
// empty), with env added to the agent's environment. A non-zero exit, a
// command that cannot start and a timeout are errors that quote the command
// and the end of its output.
func Run(ctx context.Context, dir, command string, env []string, timeout time.Duration) (Result, error) {
	if timeout <= 0 {
		timeout = 30 * time.Second
	}
	cctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	cmd := exec.CommandContext(cctx, "/bin/sh", "-c", command)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = time.Second
	out := &tailBuffer{max: MaxOutput}
	cmd.Stdout, cmd.Stderr = out, out
	start := time.Now()
	err := cmd.Run()
	res := Result{Output: out.String(), Duration: time.Since(start)}
	if errors.Is(cctx.Err(), context.DeadlineExceeded) && ctx.Err() == nil {
		return res, fmt.Errorf("%q %w after %s", command, ErrTimeout, timeout)
	}
	if err != nil {
		tail := strings.TrimSpace(res.Output)
		if len(tail) > 300 {
			tail = "…" + tail[len(tail)-300:]
		}
		if tail != "" {
			return res, fmt.Errorf("%q failed: %w: %s", command, err, tail)
		}
		return res, fmt.Errorf("%q failed: %w", command, err)
	}
	return res, nil
}

// tailBuffer keeps the last max bytes written to it.
type tailBuffer struct {
	buf bytes.Buffer
	max int
}

func (t *tailBuffer) Write(p []byte) (int, error) {
	n := len(p)
	if len(p) > t.max {
		p = p[len(p)-t.max:]
	}
	t.buf.Write(p)
	if over := t.buf.Len() - t.max; over > 0 {
		t.buf.Next(over)
	}
	return n, nil
}

func (t *tailBuffer) String() string { return t.buf.String() }
