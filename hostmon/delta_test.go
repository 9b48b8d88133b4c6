package hostmon

import (
	"context"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// TestScanTreeDeltaRecordsOnlyWhatItScanned: rescanning one edited file of
// a 2,000-file tree returns that file and its parent directories, nothing
// of the rest, and leaves prev alone; applied to prev it gives what a full
// scan gives.
func TestScanTreeDeltaRecordsOnlyWhatItScanned(t *testing.T) {
	root := t.TempDir()
	for d := range 20 {
		for f := range 100 {
			writeFile(t, root, fmt.Sprintf("d%02d/sub/f%03d.conf", d, f), "x", 0o644)
		}
	}
	prev := scan(t, root, nil, nil)
	before := maps.Clone(prev)
	writeFile(t, root, "d07/sub/f042.conf", "edited", 0o644)
	d, err := ScanTreeDelta(context.Background(), root, nil, []string{"d07/sub/f042.conf"}, prev, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := keys(d.States), []string{"d07", "d07/sub", "d07/sub/f042.conf"}; !slices.Equal(got, want) {
		t.Fatalf("delta records %v, want %v", got, want)
	}
	if len(d.Removed) != 0 || d.Full {
		t.Fatalf("delta removes %v (full %v)", d.Removed, d.Full)
	}
	if !maps.EqualFunc(prev, before, func(a, b FileState) bool { return a.Item.SameContent(b.Item) && a.CTime == b.CTime }) {
		t.Fatal("ScanTreeDelta changed prev")
	}
	// the same scan with WithChangesOnly leaves out the directories, as
	// prev has them, and finds the edit
	only, err := ScanTreeDelta(context.Background(), root, nil, []string{"d07/sub/f042.conf"}, prev, nil, WithChangesOnly())
	if err != nil {
		t.Fatal(err)
	}
	if got, want := keys(only.States), []string{"d07/sub/f042.conf"}; !slices.Equal(got, want) {
		t.Fatalf("delta of changes only records %v, want %v", got, want)
	}
	d.Apply(prev)
	checkSameStates(t, prev, scan(t, root, nil, nil))
}

// TestScanTreeDeltaApplyEqualsFullScan: after each kind of change the
// watcher reports by path (a file replaced by a directory and back, a
// directory removed, a nested tree created, a parent replaced by a file),
// prev with the delta applied equals a full scan.
func TestScanTreeDeltaApplyEqualsFullScan(t *testing.T) {
	for _, only := range []bool{false, true} {
		t.Run(fmt.Sprint("changes only=", only), func(t *testing.T) {
			var opts []ScanOption
			if only {
				opts = append(opts, WithChangesOnly())
			}
			testScanTreeDeltaApplyEqualsFullScan(t, opts)
		})
	}
}

func testScanTreeDeltaApplyEqualsFullScan(t *testing.T, opts []ScanOption) {
	root := t.TempDir()
	writeFile(t, root, "a/b/c.conf", "1", 0o644)
	writeFile(t, root, "a/b/d.conf", "2", 0o644)
	writeFile(t, root, "x.conf", "3", 0o644)
	writeFile(t, root, "keep/k.conf", "4", 0o644)
	rm := func(rel string) {
		if err := os.RemoveAll(filepath.Join(root, rel)); err != nil {
			t.Fatal(err)
		}
	}
	steps := []struct {
		name  string
		do    func()
		paths []string
	}{
		{"file becomes a directory", func() { rm("x.conf"); writeFile(t, root, "x.conf/in.conf", "5", 0o644) }, []string{"x.conf"}},
		{"directory becomes a file", func() { rm("x.conf"); writeFile(t, root, "x.conf", "6", 0o644) }, []string{"x.conf"}},
		{"directory removed", func() { rm("a/b") }, []string{"a/b"}},
		{"nested tree created", func() { writeFile(t, root, "n/m/o/p.conf", "7", 0o644) }, []string{"n/m/o/p.conf"}},
		{"parent replaced by a file", func() { rm("n"); writeFile(t, root, "n", "8", 0o644) }, []string{"n/m/o/p.conf"}},
		{"file removed", func() { rm("keep/k.conf") }, []string{"keep/k.conf"}},
		{"whole tree", func() { writeFile(t, root, "keep/z.conf", "9", 0o644) }, []string{""}},
	}
	states := scan(t, root, nil, nil)
	for _, st := range steps {
		st.do()
		d, err := ScanTreeDelta(context.Background(), root, nil, st.paths, states, nil, opts...)
		if err != nil {
			t.Fatalf("%s: %v", st.name, err)
		}
		d.Apply(states)
		t.Run(st.name, func(t *testing.T) { checkSameStates(t, states, scan(t, root, nil, nil)) })
	}
}

func checkSameStates(t *testing.T, got, want map[string]FileState) {
	t.Helper()
	if !slices.Equal(keys(got), keys(want)) {
		t.Fatalf("paths %v, want %v", keys(got), keys(want))
	}
	for p, w := range want {
		if g := got[p]; !g.Item.SameContent(w.Item) || g.Inode != w.Inode {
			t.Errorf("%s: %+v, want %+v", p, g.Item, w.Item)
		}
	}
}

// TestScanTreeDeltaFullRecordsOnlyChanges: a rescan of the whole tree
// returns what differs from prev only — nothing for an unchanged tree (no
// second copy of its state), the edited file and the removed one after
// changes — and applied to prev gives what a full scan gives.
func TestScanTreeDeltaFullRecordsOnlyChanges(t *testing.T) {
	root := t.TempDir()
	for f := range 200 {
		writeFile(t, root, fmt.Sprintf("d/f%03d.conf", f), "x", 0o644)
	}
	waitUntrusted()
	prev := scan(t, root, nil, nil)
	d, err := ScanTreeDelta(context.Background(), root, nil, []string{""}, prev, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !d.Full || len(d.States) != 0 || len(d.Removed) != 0 {
		t.Fatalf("an unchanged tree: full %v, %d states, removed %v", d.Full, len(d.States), d.Removed)
	}
	writeFile(t, root, "d/f007.conf", "edited", 0o644)
	if err := os.Remove(filepath.Join(root, "d/f008.conf")); err != nil {
		t.Fatal(err)
	}
	d, err = ScanTreeDelta(context.Background(), root, nil, []string{"."}, prev, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := keys(d.States); !slices.Equal(got, []string{"d", "d/f007.conf"}) || !slices.Equal(d.Removed, []string{"d/f008.conf"}) {
		t.Fatalf("after an edit and a removal: states %v, removed %v", got, d.Removed)
	}
	d.Apply(prev)
	checkSameStates(t, prev, scan(t, root, nil, nil))
}

// TestScanShallowDirectory: a directory reported for its own attributes
// (WithShallow) is rescanned without what lies below it while it is the
// directory the previous scan saw, and the paths given below it are still
// rescanned; one whose mode changed, or that was replaced, is rescanned
// in full. Applied to prev, each delta gives what a full scan gives.
func TestScanShallowDirectory(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		name    string
		change  func(t *testing.T, root string)
		shallow bool // rescanned without its files
	}{
		{"times only", func(t *testing.T, root string) {
			writeFile(t, root, "d/a.conf", "edited", 0o644)
			when := time.Unix(1e9, 0)
			if err := os.Chtimes(filepath.Join(root, "d"), when, when); err != nil {
				t.Fatal(err)
			}
		}, true},
		{"mode changed", func(t *testing.T, root string) {
			writeFile(t, root, "d/a.conf", "edited", 0o644)
			if err := os.Chmod(filepath.Join(root, "d"), 0o700); err != nil {
				t.Fatal(err)
			}
		}, false},
		{"replaced", func(t *testing.T, root string) {
			if err := os.Rename(filepath.Join(root, "d"), filepath.Join(root, "old")); err != nil {
				t.Fatal(err)
			}
			writeFile(t, root, "d/a.conf", "edited", 0o644)
		}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			root := t.TempDir()
			for i := range 50 {
				writeFile(t, root, fmt.Sprintf("d/f%02d.conf", i), "x", 0o644)
			}
			writeFile(t, root, "d/a.conf", "x", 0o644)
			prev := scan(t, root, nil, nil)
			tc.change(t, root)
			d, err := ScanTreeDelta(ctx, root, nil, []string{"d/a.conf", "d"}, prev, nil, WithShallow([]string{"d"}))
			if err != nil {
				t.Fatal(err)
			}
			if got := slices.Equal(d.Shallow, []string{"d"}); got != tc.shallow {
				t.Fatalf("Delta.Shallow %v; want shallow %v", d.Shallow, tc.shallow)
			}
			if _, ok := d.States["d/a.conf"]; !ok {
				t.Fatal("the edited file below the directory was not rescanned")
			}
			_, rescanned := d.States["d/f07.conf"]
			removed := slices.Contains(d.Removed, "d/f07.conf")
			switch {
			case tc.shallow && (rescanned || removed):
				t.Fatalf("a file below a shallow directory rescanned %v, removed %v", rescanned, removed)
			case !tc.shallow && !rescanned && !removed:
				t.Fatal("a file below a directory rescanned in full is missing from the delta")
			}
			got := maps.Clone(prev)
			d.Apply(got)
			underD := func(m map[string]FileState) map[string]FileState { // what the delta was asked about
				maps.DeleteFunc(m, func(p string, _ FileState) bool { return p != "d" && !strings.HasPrefix(p, "d/") })
				return m
			}
			if got, want := underD(got), underD(scan(t, root, nil, nil)); !maps.EqualFunc(got, want, func(a, b FileState) bool { return a.SameContent(b.Item) && a.Path == b.Path }) {
				t.Fatalf("prev with the delta holds %d states at and below d, a full scan %d", len(got), len(want))
			}
		})
	}
}
