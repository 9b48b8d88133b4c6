package syncer

import (
	"fmt"
	"log/slog"
	"path/filepath"
	"reflect"
	"testing"

	"pbxsync/hostmon"
	"pbxsync/internal/config"
	"pbxsync/internal/index"
	"pbxsync/internal/store"
)

// The scan state is saved per path: a save after a one-path rescan writes
// that path only, a full scan writes what changed, and a restart reads
// back exactly what was saved — with no size cap (format 1 kept it as one
// JSON value of at most 16 MiB, about 50k files).
func TestScanStateSavedPerPath(t *testing.T) {
	dir := t.TempDir()
	st, err := store.Open(filepath.Join(dir, "store"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	newJob := func() *job {
		return &job{a: &Agent{store: st}, cfg: config.Job{Name: "j"}, log: slog.New(slog.DiscardHandler)}
	}
	states := map[string]hostmon.FileState{}
	for i := range 3000 {
		p := fmt.Sprintf("d%d/f%04d.conf", i%10, i)
		states[p] = hostmon.FileState{Item: index.Item{Path: p, Kind: index.KindFile, Size: int64(i), Mode: 0o640, MTime: int64(i) << 20,
			Hash: index.Sum([]byte(p))}, Dev: 42, Inode: uint64(1000 + i), CTime: int64(i) << 21}
	}
	for i := range 10 {
		p := fmt.Sprintf("d%d", i)
		states[p] = hostmon.FileState{Item: index.Item{Path: p, Kind: index.KindDir, Mode: 0o755}}
	}
	j := newJob()
	j.noteScanned(nil, states, nil)
	j.states = states
	j.save()
	if len(j.scanDirty) != 0 {
		t.Fatalf("dirty after save: %d", len(j.scanDirty))
	}

	// A rescan of one file, and of one directory that lost a file.
	after := map[string]hostmon.FileState{}
	for p, s := range states {
		after[p] = s
	}
	edit := after["d3/f0003.conf"]
	edit.Hash, edit.CTime = index.Sum([]byte("edited")), 7
	after[edit.Path] = edit
	delete(after, "d5/f0005.conf")
	j.noteScanned(j.states, after, []string{"d3/f0003.conf", "d5"})
	if len(j.scanDirty) != 2 {
		t.Fatalf("dirty paths %v", j.scanDirty)
	}
	j.states = after
	j.save()

	j2 := newJob()
	got, err := j2.loadScan()
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, after) {
		t.Fatalf("loaded %d states, want %d; edit %+v", len(got), len(after), got[edit.Path])
	}
	// A full scan that finds the same tree marks nothing.
	j2.noteScanned(got, after, nil)
	if len(j2.scanDirty) != 0 {
		t.Fatalf("an unchanged full scan marked %d paths", len(j2.scanDirty))
	}
}
