package syncer

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"pbxsync/hostmon"
	"pbxsync/internal/index"
)

// TestSettlerAcrossDirectories: every file an apply writes, more of them
// than the settler queues and in several directories, comes back to
// Applier.Settled once (from the settler's goroutine) with the state a
// read-back after the apply gives, a replaced file too and a removed one
// not; and the settler closes every directory execute handed it.
func TestSettlerAcrossDirectories(t *testing.T) {
	t.Parallel()
	a := newApplier(t)
	ctx := context.Background()
	have, want := index.New(0), index.New(0)
	for d := range 3 {
		p := fmt.Sprintf("site%d", d)
		want.Set(index.Item{Path: p, Kind: index.KindDir, Mode: fsMode(0o755)})
		for i := range 700 { // more than settleQueue
			it := a.put(t, fmt.Sprintf("%s/e%04d.conf", p, i), fmt.Sprintf("[%d-%d]\n", d, i), 0o644)
			want.Set(it)
		}
	}
	// a file replaced and one removed in a directory that stays
	if err := os.WriteFile(filepath.Join(a.Root, "old.conf"), []byte("old"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(a.Root, "gone.conf"), []byte("gone"), 0o644); err != nil {
		t.Fatal(err)
	}
	have.Set(index.Item{Path: "old.conf", Kind: index.KindFile, Size: 3, Mode: 0o644, Hash: index.Sum([]byte("old"))})
	have.Set(index.Item{Path: "gone.conf", Kind: index.KindFile, Size: 4, Mode: 0o644, Hash: index.Sum([]byte("gone"))})
	want.Set(a.put(t, "old.conf", "new", 0o644))

	settled := map[string]hostmon.FileState{}
	a.Settled = func(st hostmon.FileState) {
		if _, dup := settled[st.Path]; dup {
			t.Errorf("%s settled twice", st.Path)
		}
		settled[st.Path] = st
	}
	if err := a.Apply(ctx, 1, Plan(have, want), IndexLookup(want)); err != nil {
		t.Fatal(err)
	}
	files := 0
	for p, it := range want.All() {
		if it.Kind != index.KindFile {
			continue
		}
		files++
		fi, err := os.Lstat(filepath.Join(a.Root, p))
		if err != nil {
			t.Fatal(err)
		}
		wantSt, ok := hostmon.Settled(it, fi)
		if !ok {
			t.Fatalf("%s as applied is not what was announced", p)
		}
		if got, ok := settled[p]; !ok || !reflect.DeepEqual(got, wantSt) {
			t.Errorf("%s settled as %+v (%v), want %+v", p, got, ok, wantSt)
		}
	}
	if len(settled) != files {
		t.Errorf("%d files settled, want %d", len(settled), files)
	}
	if _, ok := settled["gone.conf"]; ok {
		t.Error("a removed file settled")
	}
	if open := openUnder(t, a.Root); len(open) > 0 {
		t.Errorf("descriptors still open in the tree after the apply: %v", open)
	}
}

// openUnder lists what this process holds open under dir.
func openUnder(t *testing.T, dir string) []string {
	t.Helper()
	es, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range es {
		p, err := os.Readlink(filepath.Join("/proc/self/fd", e.Name()))
		if err == nil && (p == dir || strings.HasPrefix(p, dir+"/")) {
			out = append(out, p)
		}
	}
	return out
}
