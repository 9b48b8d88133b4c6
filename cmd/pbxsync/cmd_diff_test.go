package main

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"pbxsync/internal/identity"
	"pbxsync/internal/index"
	"pbxsync/internal/store"
)

// writeConfig writes a one-job config whose data_dir is dataDir.
func writeConfig(t *testing.T, dataDir string) string {
	t.Helper()
	peer := identity.IDFromPublicKey(make([]byte, 32))
	cfg := fmt.Sprintf("[node]\nname = \"a\"\nlisten = \"127.0.0.1:7420\"\ndata_dir = %q\n\n[[peer]]\nname = \"b\"\naddress = \"127.0.0.1:7421\"\nid = %q\n\n[[job]]\nname = \"conf\"\npath = %q\nsource = \"a\"\ntargets = [\"b\"]\n",
		dataDir, peer.String(), t.TempDir())
	path := filepath.Join(t.TempDir(), "pbxsync.toml")
	if err := os.WriteFile(path, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestHistoryAndDiff(t *testing.T) {
	data := t.TempDir()
	st, err := store.Open(filepath.Join(data, "store"), slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	put := func(p, content string, mode uint32) index.Item {
		h, n, err := st.PutReader(ctx, strings.NewReader(content))
		if err != nil {
			t.Fatal(err)
		}
		return index.Item{Path: p, Kind: index.KindFile, Size: n, Mode: fsModeOf(mode), Hash: h}
	}
	g1 := index.New(0)
	for _, it := range []index.Item{put("extensions.conf", "exten => 100,1,Answer()\n", 0o644), put("old.conf", "x\n", 0o644), put("voicemail.conf", "v\n", 0o644)} {
		g1.Set(it)
	}
	g2 := g1.Clone()
	g2.Set(put("extensions.conf", "exten => 100,1,Answer()\nexten => 101,1,Hangup()\n", 0o644))
	g2.Delete("old.conf")
	g2.Set(put("new.conf", "n\n", 0o600))
	vm, _ := g2.Get("voicemail.conf")
	vm.Mode = 0o640
	g2.Set(vm)
	for _, x := range []index.Index{g1, g2} {
		if _, err := st.AddGeneration(ctx, &store.Generation{Job: "conf", Origin: "a", State: store.StateGood, Index: x}); err != nil {
			t.Fatal(err)
		}
	}
	st.Close()
	cfg := writeConfig(t, data)

	var out, errb bytes.Buffer
	if code := run([]string{"diff", "--config", cfg, "--job", "conf", "--content", "1", "2"}, &out, &errb); code != 0 {
		t.Fatalf("diff exit %d: %s", code, errb.String())
	}
	for _, want := range []string{"modified  extensions.conf", "+exten => 101,1,Hangup()", "removed   old.conf", "added     new.conf", "mode      voicemail.conf 0644 -> 0640"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("diff output lacks %q:\n%s", want, out.String())
		}
	}
	out.Reset()
	if code := run([]string{"history", "--config", cfg, "--job", "conf", "--json"}, &out, &errb); code != 0 {
		t.Fatalf("history exit %d: %s", code, errb.String())
	}
	if !strings.Contains(out.String(), `"generation": 2`) || !strings.Contains(out.String(), `"state": "good"`) {
		t.Errorf("history --json: %s", out.String())
	}
	errb.Reset()
	if code := run([]string{"diff", "--config", cfg, "--job", "nope", "1", "2"}, &out, &errb); code != 1 || !strings.Contains(errb.String(), `no job "nope"`) {
		t.Errorf("unknown job: exit %d, %q", code, errb.String())
	}
}

func fsModeOf(m uint32) os.FileMode { return os.FileMode(m) }
