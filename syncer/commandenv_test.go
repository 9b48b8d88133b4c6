package syncer

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"pbxsync/internal/config"
)

// manyPaths returns n changed paths as a 100k-file job's first
// generation has them.
func manyPaths(n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("site%03d/endpoint%04d.conf", i/1000, i%1000)
	}
	return out
}

// TestCommandsGetEveryChangedPath: a check and a shell action of a
// generation of 100,000 paths start (their environment would be 2.6 MB:
// "argument list too long" before PBXSYNC_CHANGED_FILE) and read every
// path from PBXSYNC_CHANGED_FILE, with PBXSYNC_CHANGED_COUNT, and without
// PBXSYNC_CHANGED; a small generation has both, the same; the file is in
// ListDir, and gone once the command has ended.
func TestCommandsGetEveryChangedPath(t *testing.T) {
	t.Parallel()
	// the command checks what it got, and leaves the file's name and its
	// first and last lines in the job root
	const probe = `test "$(wc -l < "$PBXSYNC_CHANGED_FILE")" -eq "$PBXSYNC_CHANGED_COUNT" &&
{ echo "$PBXSYNC_CHANGED_FILE"; head -n1 "$PBXSYNC_CHANGED_FILE"; tail -n1 "$PBXSYNC_CHANGED_FILE"; echo "${PBXSYNC_CHANGED-unset}" | tail -n1; } > `
	for _, n := range []int{3, 100000} {
		t.Run(fmt.Sprint(n, " paths"), func(t *testing.T) {
			t.Parallel()
			changed := manyPaths(n)
			job := astTestJob(t, config.Rule{Match: []string{"*.conf"}, Action: "shell " + probe + "shell.out"})
			job.Check = probe + "check.out"
			listDir := t.TempDir() // the agent's data directory
			var logs strings.Builder
			x := &AsteriskActions{ListDir: listDir, Log: slog.New(slog.NewTextHandler(&logs, nil))}
			if err := x.AfterApply(context.Background(), job, 1, changed); err != nil {
				t.Fatalf("a generation of %d paths: %v", n, err)
			}
			if said := strings.Contains(logs.String(), "too many for PBXSYNC_CHANGED"); said != (n > 5000) {
				t.Errorf("%d paths: the log says they are too many for PBXSYNC_CHANGED: %v", n, said)
			}
			wantEnv := changed[n-1] // PBXSYNC_CHANGED's last line
			if n > 5000 {
				wantEnv = "unset"
			}
			for _, out := range []string{"shell.out", "check.out"} {
				b, err := os.ReadFile(filepath.Join(job.Path, out))
				if err != nil {
					t.Fatalf("%s: %v (the command did not run)", out, err)
				}
				lines := strings.Split(strings.TrimSpace(string(b)), "\n")
				if len(lines) != 4 || lines[1] != changed[0] || lines[2] != changed[n-1] || lines[3] != wantEnv {
					t.Fatalf("%s: %q, want the file's name, %q, %q and PBXSYNC_CHANGED's last line %q", out, lines, changed[0], changed[n-1], wantEnv)
				}
				if filepath.Dir(lines[0]) != listDir {
					t.Fatalf("%s: PBXSYNC_CHANGED_FILE %s is not in ListDir %s", out, lines[0], listDir)
				}
				if _, err := os.Stat(lines[0]); !os.IsNotExist(err) {
					t.Fatalf("%s: PBXSYNC_CHANGED_FILE %s is left after the command: %v", out, lines[0], err)
				}
			}
		})
	}
}

// TestActionOfManyPathsStaysShort: an action that 100,000 changed paths
// asked for runs once, its outcome in the status lists the first
// outcomePaths of them and how many there were, and its log line names
// logPaths of them (it held all of them, 2.6 MB, before).
func TestActionOfManyPathsStaysShort(t *testing.T) {
	t.Parallel()
	var logs strings.Builder
	f := &fakeAMI{}
	x := &AsteriskActions{AMI: f, Log: slog.New(slog.NewTextHandler(&logs, nil))}
	job := astTestJob(t, config.Rule{Match: []string{"*.conf"}, Action: "reload res_pjsip.so"})
	changed := manyPaths(100000)
	if err := x.AfterApply(context.Background(), job, 1, changed); err != nil {
		t.Fatal(err)
	}
	if got := f.Calls(); len(got) != 1 || got[0] != "reload res_pjsip.so" {
		t.Fatalf("calls %v, want one reload", got)
	}
	st := x.AsteriskStatus()
	ja := st.Jobs[job.Name]
	if len(ja) != 1 || len(ja[0].Actions) == 0 {
		t.Fatalf("status actions %+v", ja)
	}
	o := ja[0].Actions[0]
	if o.Result != "done" || o.PathCount != len(changed) || len(o.Paths) != outcomePaths || o.Paths[0] != changed[0] {
		t.Fatalf("outcome %s %s: %d paths (first %q), count %d; want %d, %q, %d", o.Action, o.Result, len(o.Paths), o.Paths[0], o.PathCount, outcomePaths, changed[0], len(changed))
	}
	for _, line := range strings.Split(logs.String(), "\n") {
		if len(line) > 4096 {
			t.Fatalf("a log line of %d bytes: %.200s…", len(line), line)
		}
		if strings.Contains(line, "action done") && !strings.Contains(line, fmt.Sprintf("%d more", len(changed)-logPaths)) {
			t.Fatalf("the action's log line does not say how many more paths: %s", line)
		}
	}
}
