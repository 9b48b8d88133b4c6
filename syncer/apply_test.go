package syncer

import (
	"context"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"pbxsync/internal/index"
	"pbxsync/internal/store"
)

func newApplier(t testing.TB) *Applier {
	t.Helper()
	root, data := t.TempDir(), t.TempDir()
	st, err := store.Open(filepath.Join(data, "store"), slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	staging, err := StagingDir(root, filepath.Join(data, "staging"))
	if err != nil {
		t.Fatal(err)
	}
	return &Applier{Job: "conf", Root: root, Staging: staging, Store: st, Log: slog.New(slog.DiscardHandler)}
}

func (a *Applier) put(t testing.TB, p, content string, mode uint32) index.Item {
	t.Helper()
	h, n, err := a.Store.PutReader(context.Background(), stringsReader(content))
	if err != nil {
		t.Fatal(err)
	}
	return index.Item{Path: p, Kind: index.KindFile, Size: n, Mode: fsMode(mode), MTime: 1_700_000_000_000_000_000, Hash: h}
}

func TestApplyKeepsOwnership(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("only root can give files away; the agent runs as root in production")
	}
	a := newApplier(t)
	ctx := context.Background()
	// an existing file owned by uid 123 is replaced: the new inode keeps uid 123
	full := filepath.Join(a.Root, "extensions.conf")
	os.WriteFile(full, []byte("old"), 0o640)
	os.Chown(full, 123, 456)
	os.Mkdir(filepath.Join(a.Root, "sub"), 0o755)
	os.Chown(filepath.Join(a.Root, "sub"), 777, 888)
	want := index.Index{}
	for _, it := range []index.Item{a.put(t, "extensions.conf", "new", 0o640), a.put(t, "sub/new/x.conf", "x", 0o644)} {
		want[it.Path] = it
	}
	want["sub"] = index.Item{Path: "sub", Kind: index.KindDir, Mode: 0o755}
	want["sub/new"] = index.Item{Path: "sub/new", Kind: index.KindDir, Mode: 0o755}
	have := index.Index{
		"extensions.conf": {Path: "extensions.conf", Kind: index.KindFile, Size: 3, Mode: 0o640, Hash: index.Sum([]byte("old"))},
		"sub":             {Path: "sub", Kind: index.KindDir, Mode: 0o755},
	}
	if err := a.Apply(ctx, 1, Plan(have, want)); err != nil {
		t.Fatal(err)
	}
	owner := func(p string) (uint32, uint32) {
		st, err := os.Lstat(filepath.Join(a.Root, p))
		if err != nil {
			t.Fatal(err)
		}
		s := st.Sys().(*syscall.Stat_t)
		return s.Uid, s.Gid
	}
	if u, g := owner("extensions.conf"); u != 123 || g != 456 {
		t.Errorf("replaced file owned by %d:%d, want 123:456", u, g)
	}
	if u, g := owner("sub/new"); u != 777 || g != 888 {
		t.Errorf("new directory owned by %d:%d, want its parent's 777:888", u, g)
	}
	if u, g := owner("sub/new/x.conf"); u != 777 || g != 888 {
		t.Errorf("new file owned by %d:%d, want 777:888", u, g)
	}
	if b, _ := os.ReadFile(full); string(b) != "new" {
		t.Errorf("content %q", b)
	}
}

func stringsReader(s string) io.Reader { return strings.NewReader(s) }
