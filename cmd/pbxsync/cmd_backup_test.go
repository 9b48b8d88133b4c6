package main

import (
	"bytes"
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"pbxsync/internal/index"
	"pbxsync/internal/store"
)

// TestBackupAndDryRun: pbxsync backup writes a verified archive of a
// generation from the store without an agent; restore --dry-run verifies
// it and lists what would change; a damaged archive is refused with exit 1
// and "nothing was changed"; restore without an agent says so.
func TestBackupAndDryRun(t *testing.T) {
	data := t.TempDir()
	st, err := store.Open(filepath.Join(data, "store"), slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	put := func(p, content string) index.Item {
		h, n, err := st.PutReader(ctx, strings.NewReader(content))
		if err != nil {
			t.Fatal(err)
		}
		return index.Item{Path: p, Kind: index.KindFile, Size: n, Mode: 0o644, Hash: h}
	}
	g1 := index.Of(put("extensions.conf", "exten => 100,1,Answer()\n"), put("old.conf", "x\n"))
	g2 := index.Of(put("extensions.conf", "exten => 100,1,Hangup()\n"), put("new.conf", "n\n"))
	for _, x := range []index.Index{g1, g2} {
		if _, err := st.AddGeneration(ctx, &store.Generation{Job: "conf", Origin: "a", State: store.StateGood, Index: x}); err != nil {
			t.Fatal(err)
		}
	}
	st.Close()
	cfg := writeConfig(t, data)
	out := filepath.Join(t.TempDir(), "g1.tar.zst")

	var stdout, stderr bytes.Buffer
	if code := run([]string{"backup", "--config", cfg, "--job", "conf", "--generation", "1", "--out", out}, &stdout, &stderr); code != 0 {
		t.Fatalf("backup exit %d: %s", code, stderr.String())
	}
	if !strings.Contains(stdout.String(), "generation 1, 2 items") || !strings.Contains(stdout.String(), "verified") {
		t.Errorf("backup said %q", stdout.String())
	}
	stdout.Reset()
	if code := run([]string{"restore", "--config", cfg, "--job", "conf", "--from", out, "--dry-run"}, &stdout, &stderr); code != 0 {
		t.Fatalf("restore --dry-run exit %d: %s", code, stderr.String())
	}
	for _, want := range []string{"verified: job conf generation 1", "against generation 2: 1 to add, 1 to change, 1 to delete", "+ old.conf", "~ extensions.conf", "- new.conf", "nothing was changed"} {
		if !strings.Contains(stdout.String(), want) {
			t.Errorf("dry run lacks %q:\n%s", want, stdout.String())
		}
	}

	raw, _ := os.ReadFile(out)
	raw[len(raw)/2] ^= 0xff
	bad := filepath.Join(t.TempDir(), "bad.tar.zst")
	os.WriteFile(bad, raw, 0o600)
	stderr.Reset()
	if code := run([]string{"restore", "--config", cfg, "--job", "conf", "--from", bad}, &stdout, &stderr); code != 1 || !strings.Contains(stderr.String(), "refused, nothing was changed") || !strings.Contains(stderr.String(), "damaged backup archive") {
		t.Errorf("damaged archive: exit %d, %q", code, stderr.String())
	}
	stderr.Reset()
	if code := run([]string{"restore", "--config", cfg, "--job", "conf", "--from", out}, &stdout, &stderr); code != 1 || !strings.Contains(stderr.String(), "no agent is running") {
		t.Errorf("restore without an agent: exit %d, %q", code, stderr.String())
	}
	stderr.Reset()
	if code := run([]string{"backup", "--config", cfg, "--job", "conf", "--generation", "9", "--out", out}, &stdout, &stderr); code != 1 || !strings.Contains(stderr.String(), "generation 9") {
		t.Errorf("backup of a missing generation: exit %d, %q", code, stderr.String())
	}
}
