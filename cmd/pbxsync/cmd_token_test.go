package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"pbxsync/internal/httpapi"
	"pbxsync/internal/testwait"
	"pbxsync/syncer"
)

// TestTokenCommand: `pbxsync token` creates the token on first use (mode
// 0600, says so on stderr), prints the same one after, and --rotate
// replaces it.
func TestTokenCommand(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	var out1, err1, out2, err2 bytes.Buffer
	if code := run([]string{"token", "--data-dir", dir}, &out1, &err1); code != 0 {
		t.Fatalf("exit %d: %s", code, err1.String())
	}
	if !strings.Contains(err1.String(), "created a new token in "+httpapi.TokenPath(dir)) {
		t.Errorf("first run: stderr %q", err1.String())
	}
	fi, err := os.Stat(httpapi.TokenPath(dir))
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("token file: %v %v", fi, err)
	}
	if code := run([]string{"token", "--data-dir", dir}, &out2, &err2); code != 0 || out2.String() != out1.String() || err2.Len() != 0 {
		t.Errorf("second run: exit %d, %q (first %q), stderr %q", code, out2.String(), out1.String(), err2.String())
	}
	var out3 bytes.Buffer
	if code := run([]string{"token", "--data-dir", dir, "--rotate"}, &out3, &err2); code != 0 || out3.String() == out1.String() || len(strings.TrimSpace(out3.String())) < 40 {
		t.Errorf("--rotate: exit %d, %q (old %q)", code, out3.String(), out1.String())
	}
	cfg := writeConfig(t, dir)
	var out4 bytes.Buffer
	if code := run([]string{"token", "--config", cfg}, &out4, &err2); code != 0 || out4.String() != out3.String() {
		t.Errorf("--config: exit %d, %q, want the rotated %q", code, out4.String(), out3.String())
	}
}

// TestSyncCommand: `pbxsync sync --job J` makes the running agent record
// a change its watcher has not reported yet (debounce 10 s) at once.
func TestSyncCommand(t *testing.T) {
	dir := t.TempDir()
	tree := filepath.Join(dir, "tree")
	os.MkdirAll(tree, 0o755)
	os.WriteFile(filepath.Join(tree, "a.conf"), []byte("one\n"), 0o644)
	text := strings.Replace(baseConfig(t, dir), "targets = [\"b\"]\n", "targets = [\"b\"]\ndebounce = \"10s\"\n", 1)
	path := writeText(t, dir, text)
	log := &syncBuffer{}
	started, stop := startRun(t, path, log)
	defer stop()
	if !started {
		t.Fatalf("run did not start:\n%s", log.String())
	}
	generation := func() uint64 {
		t.Helper()
		var out, errb bytes.Buffer
		if code := run([]string{"status", "--config", path, "--json"}, &out, &errb); code != 0 {
			t.Fatalf("status: %d %s", code, errb.String())
		}
		var st syncer.Status
		if err := json.Unmarshal(out.Bytes(), &st); err != nil || len(st.Jobs) != 1 {
			t.Fatalf("status: %v %s", err, out.String())
		}
		return st.Jobs[0].Generation
	}
	var before uint64
	testwait.Eventually(t, "the first generation", func() error {
		if before = generation(); before == 0 {
			return errors.New("no generation yet")
		}
		return nil
	})
	os.WriteFile(filepath.Join(tree, "b.conf"), []byte("two\n"), 0o644)
	var out, errb bytes.Buffer
	if code := run([]string{"sync", "--config", path, "--job", "conf"}, &out, &errb); code != 0 {
		t.Fatalf("sync: exit %d: %s", code, errb.String())
	}
	if after := generation(); after != before+1 {
		t.Errorf("after pbxsync sync the job is at generation %d, want %d", after, before+1)
	}
	if code := run([]string{"sync", "--config", path, "--job", "nope"}, &out, &errb); code != 1 || !strings.Contains(errb.String(), `no job "nope"`) {
		t.Errorf("sync of an unknown job: exit %d, %q", code, errb.String())
	}
}
