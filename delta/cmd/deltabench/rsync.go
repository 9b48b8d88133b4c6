package main

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// rsyncRunner runs rsync -z from src/f to dst/f through a fake remote
// shell, so that rsync uses its delta algorithm as it would between hosts.
type rsyncRunner struct {
	dir, rsh, version string
}

type rsyncResult struct {
	sent, received, total int64
	wall, cpu             time.Duration
}

func newRsync(dir string) (*rsyncRunner, error) {
	if _, err := exec.LookPath("rsync"); err != nil {
		return nil, fmt.Errorf("rsync not found (apt-get install -y rsync): %w", err)
	}
	for _, d := range []string{"src", "dst"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			return nil, err
		}
	}
	rsh := filepath.Join(dir, "rsh")
	// The "remote shell" drops the host name and runs the command locally.
	if err := os.WriteFile(rsh, []byte("#!/bin/sh\nshift\nexec \"$@\"\n"), 0o755); err != nil {
		return nil, err
	}
	v, err := exec.Command("rsync", "--version").Output()
	if err != nil {
		return nil, err
	}
	first, _, _ := strings.Cut(string(v), "\n")
	r := &rsyncRunner{dir: dir, rsh: rsh, version: strings.Join(strings.Fields(first), " ")}
	// Which compressor -z negotiates, for the report.
	if err := os.WriteFile(filepath.Join(dir, "src", "f"), []byte("x"), 0o644); err != nil {
		return nil, err
	}
	neg, _ := exec.Command("rsync", "-z", "--debug=nstr", "-I", "-e", rsh, filepath.Join(dir, "src", "f"), "fake:"+filepath.Join(dir, "dst", "f")).CombinedOutput()
	if m := regexp.MustCompile(`negotiated compress: (.*)`).FindSubmatch(neg); m != nil {
		r.version += ", `-z` negotiates " + strings.TrimSpace(string(m[1]))
	}
	return r, nil
}

var statRE = regexp.MustCompile(`Total bytes (sent|received): ([0-9,]+)`)

// run puts base at the destination and target at the source, runs
// rsync -z --no-whole-file -I (so it never skips on size+mtime), checks the
// destination and returns rsync's byte counts and times.
func (r *rsyncRunner) run(base, target []byte) (rsyncResult, error) {
	var res rsyncResult
	src, dst := filepath.Join(r.dir, "src", "f"), filepath.Join(r.dir, "dst", "f")
	if err := os.WriteFile(dst, base, 0o644); err != nil {
		return res, err
	}
	if err := os.WriteFile(src, target, 0o644); err != nil {
		return res, err
	}
	return r.runFiles(src, dst, func() error {
		got, err := os.ReadFile(dst)
		if err != nil {
			return err
		}
		if !bytes.Equal(got, target) {
			return fmt.Errorf("rsync: destination differs from source")
		}
		return nil
	})
}

// runFiles runs rsync from src to dst and then check.
func (r *rsyncRunner) runFiles(src, dst string, check func() error) (rsyncResult, error) {
	var res rsyncResult
	cmd := exec.Command("rsync", "-z", "--stats", "--no-whole-file", "-I", "-e", r.rsh, src, "fake:"+dst)
	c0 := childCPU()
	t0 := time.Now()
	out, err := cmd.CombinedOutput()
	res.wall = time.Since(t0)
	res.cpu = childCPU() - c0
	if err != nil {
		return res, fmt.Errorf("rsync: %w: %s", err, out)
	}
	for _, m := range statRE.FindAllSubmatch(out, -1) {
		n, _ := strconv.ParseInt(strings.ReplaceAll(string(m[2]), ",", ""), 10, 64)
		if string(m[1]) == "sent" {
			res.sent = n
		} else {
			res.received = n
		}
	}
	res.total = res.sent + res.received
	if res.total == 0 {
		return res, fmt.Errorf("rsync: no --stats totals in %s", out)
	}
	if check != nil {
		if err := check(); err != nil {
			return res, err
		}
	}
	return res, nil
}

func childCPU() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_CHILDREN, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func selfCPU() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
