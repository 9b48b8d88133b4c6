package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// How much of an agent's log a failed test prints: its first warnings and
// errors and its last lines. The whole log goes to a file, so the failure's
// own message is not lost in a CI excerpt among thousands of log lines.
const (
	logWarnLines = 10
	logTailLines = 20
)

// dumpLog writes an agent's whole log to a file in PBXSYNC_TEST_ARTIFACTS
// (or a new directory under $TMPDIR) and prints where, with its last
// warnings and last lines. For failed tests only.
func dumpLog(t *testing.T, name, log string) {
	t.Helper()
	dir := os.Getenv(ArtifactsEnv)
	var err error
	if dir == "" {
		dir, err = os.MkdirTemp("", "pbxsync-test-logs-")
	} else {
		err = os.MkdirAll(dir, 0o755)
	}
	file := filepath.Join(dir, strings.NewReplacer("/", "_", " ", "_").Replace(t.Name()+"-"+name)+".log")
	if err == nil {
		err = os.WriteFile(file, []byte(log), 0o644)
	}
	lines := strings.Split(strings.TrimRight(log, "\n"), "\n")
	var warns []string
	for _, l := range lines {
		if len(warns) < logWarnLines && (strings.Contains(l, "level=WARN") || strings.Contains(l, "level=ERROR")) {
			warns = append(warns, l)
		}
	}
	if len(lines) > logTailLines {
		lines = lines[len(lines)-logTailLines:]
	}
	where := file
	if err != nil {
		where = fmt.Sprintf("not written whole (%v)", err)
	}
	t.Logf("log of %s: %s\nfirst warnings:\n%s\nlast lines:\n%s", name, where, strings.Join(warns, "\n"), strings.Join(lines, "\n"))
}
