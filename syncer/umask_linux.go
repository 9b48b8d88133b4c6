package syncer

import (
	"bufio"
	"bytes"
	"io/fs"
	"os"
	"strconv"
)

// processUmask returns the file mode creation mask of this process, read
// from /proc/self/status (Linux 4.7 and later; umask(2) cannot read it
// without setting it, a race with every file other goroutines create).
// ok is false when the kernel does not say.
func processUmask() (mask fs.FileMode, ok bool) {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0, false
	}
	return parseUmask(b)
}

// parseUmask finds the Umask line of a /proc/PID/status text.
func parseUmask(status []byte) (fs.FileMode, bool) {
	sc := bufio.NewScanner(bytes.NewReader(status))
	for sc.Scan() {
		v, found := bytes.CutPrefix(sc.Bytes(), []byte("Umask:"))
		if !found {
			continue
		}
		n, err := strconv.ParseUint(string(bytes.TrimSpace(v)), 8, 32)
		if err != nil || n > 0o777 {
			return 0, false
		}
		return fs.FileMode(n), true
	}
	return 0, false
}
