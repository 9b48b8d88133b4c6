// Package testlog is how a failed test shows the logs of the agents it
// ran: their first warnings and last lines in the test's output, each
// whole log in a file.
//
// A failed multi-agent test used to print every agent's whole debug log.
// CI shows only the head and the tail of a failing run's output, so the
// failure's own message, printed before the logs, was lost among thousands
// of log lines. Now the output stays short and the whole logs are kept on
// the machine that ran the test.
package testlog

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// ArtifactsEnv names the directory tests write their artifacts to (logs,
// screenshots); default: a new directory under $TMPDIR, kept.
const ArtifactsEnv = "PBXSYNC_TEST_ARTIFACTS"

// How much of a log Dump prints: its first warnings and errors, and its
// last lines.
const (
	WarnLines = 10
	TailLines = 30
)

// Dir returns the directory for a test's artifacts: ArtifactsEnv, or a
// new directory under $TMPDIR named after prefix, or, when prefix is
// empty, $TMPDIR/pbxsync-test-logs/PID: one for the whole test process.
func Dir(prefix string) (string, error) {
	if dir := os.Getenv(ArtifactsEnv); dir != "" {
		return dir, os.MkdirAll(dir, 0o755)
	}
	if prefix == "" {
		dir := filepath.Join(os.TempDir(), "pbxsync-test-logs", strconv.Itoa(os.Getpid()))
		return dir, os.MkdirAll(dir, 0o755)
	}
	return os.MkdirTemp("", prefix)
}

// Dump writes the log of the agent name to a file in Dir and prints
// where, with the log's first warnings and errors (slog's text lines with
// level=WARN or level=ERROR) and its last lines. Call it for failed tests
// only.
func Dump(tb testing.TB, name, log string) {
	tb.Helper()
	lines := strings.Split(strings.TrimRight(log, "\n"), "\n")
	var warns []string
	for _, l := range lines {
		if len(warns) == WarnLines {
			break
		}
		if strings.Contains(l, "level=WARN") || strings.Contains(l, "level=ERROR") {
			warns = append(warns, l)
		}
	}
	if len(lines) > TailLines {
		lines = lines[len(lines)-TailLines:]
	}
	where, err := write(tb.Name()+"-"+name, log)
	if err != nil {
		where = fmt.Sprintf("not written whole (%v)", err)
	}
	w := "none"
	if len(warns) > 0 {
		w = "\n" + strings.Join(warns, "\n")
	}
	tb.Logf("log of %s: %s\nits first warnings: %s\nits last lines:\n%s", name, where, w, strings.Join(lines, "\n"))
}

// write writes log to a file named after name in Dir("") and returns its
// path.
func write(name, log string) (string, error) {
	dir, err := Dir("")
	if err != nil {
		return "", err
	}
	file := filepath.Join(dir, strings.NewReplacer("/", "_", " ", "_").Replace(name)+".log")
	return file, os.WriteFile(file, []byte(log), 0o644)
}
