package syncer

import (
	"fmt"
	"io/fs"
	"os"
	"reflect"
	"sort"
	"strings"
	"testing"

	"pbxsync/hostmon"
	"pbxsync/internal/index"
)

func TestAdmit(t *testing.T) {
	t.Parallel()
	file := func(p string, mode fs.FileMode) index.Item {
		return index.Item{Path: p, Kind: index.KindFile, Mode: mode, Size: 1, Hash: index.Sum([]byte(p))}
	}
	dir := func(p string, mode fs.FileMode) index.Item {
		return index.Item{Path: p, Kind: index.KindDir, Mode: mode}
	}
	announced := index.New(0)
	for _, it := range []index.Item{
		file("extensions.conf", 0o644),
		file("astdb.sqlite3", 0o644),
		file("astdb.sqlite3-journal", 0o644),
		file(".pbxsync-staging", 0o600),
		dir(".pbxsyncdir", 0o755),
		file(".pbxsyncdir/x.conf", 0o644),
		file("pbxsync-local.conf", 0o644),
		file("sub/pbxsync-local.conf", 0o644),
		file("bad\nname.conf", 0o644),
		dir("esc\x1b[2J", 0o755),
		file("esc\x1b[2J/inner.conf", 0o644),
		file("c1\u0085.conf", 0o644),
		dir("sub", 0o755),
		file("sub/x.swp", 0o644),
		file("bin/agi.sh", 0o755|fs.ModeSetuid),
		file("bin/sg.sh", 0o755|fs.ModeSetgid),
		dir("bin", 0o755|fs.ModeSetuid),
		dir("spool", 0o775|fs.ModeSetgid),
		dir("spool/vm", 0o777|fs.ModeSticky),
	} {
		announced.Set(it)
	}
	f, err := hostmon.NewFilter(nil, []string{"pbxsync-local.conf"})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		preserve    bool
		wantDropped []string
		modes       map[string]fs.FileMode
	}{
		{false, []string{"bin", "bin/agi.sh", "bin/sg.sh"}, map[string]fs.FileMode{
			"bin/agi.sh": 0o755, "bin/sg.sh": 0o755, "bin": 0o755,
			"spool": 0o775 | fs.ModeSetgid, "spool/vm": 0o777 | fs.ModeSticky,
		}},
		{true, nil, map[string]fs.FileMode{
			"bin/agi.sh": 0o755 | fs.ModeSetuid, "bin/sg.sh": 0o755 | fs.ModeSetgid, "bin": 0o755 | fs.ModeSetuid,
		}},
	} {
		t.Run(fmt.Sprintf("preserve_suid=%v", tc.preserve), func(t *testing.T) {
			ad := admit(announced, f, tc.preserve)
			var got []string
			for p := range ad.want.Paths() {
				got = append(got, p)
			}
			sort.Strings(got)
			want := []string{"bin", "bin/agi.sh", "bin/sg.sh", "extensions.conf", "spool", "spool/vm", "sub"}
			if !reflect.DeepEqual(got, want) {
				t.Errorf("admitted %q, want %q", got, want)
			}
			if len(ad.refused)+ad.want.Len() != announced.Len() {
				t.Errorf("%d refused + %d admitted != %d announced: %v", len(ad.refused), ad.want.Len(), announced.Len(), ad.refused)
			}
			for _, p := range []string{"bad\nname.conf", "esc\x1b[2J", "c1\u0085.conf"} {
				if !strings.Contains(ad.refused[p], "control character") {
					t.Errorf("%q refused for %q, want a control character", p, ad.refused[p])
				}
			}
			if ad.refused["esc\x1b[2J/inner.conf"] == "" {
				t.Errorf("a file below a refused directory: %q", ad.refused["esc\x1b[2J/inner.conf"])
			}
			if !reflect.DeepEqual(ad.dropped, tc.wantDropped) {
				t.Errorf("dropped bits of %q, want %q", ad.dropped, tc.wantDropped)
			}
			for p, m := range tc.modes {
				if it, _ := ad.want.Get(p); it.Mode != m {
					t.Errorf("%s: mode %v, want %v", p, it.Mode, m)
				}
			}
		})
	}
}

// TestE2ETargetAppliesOnlyWhatItsFiltersAdmit: the source syncs a file the
// target's job excludes (its own pbxsync-local.conf): the target keeps its
// own version, says so, and applies the rest. A name with a newline never
// leaves the source.
func TestE2ETargetAppliesOnlyWhatItsFiltersAdmit(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	a, b := h.pair("")
	b.Jobs[0].Extra = `exclude = ["pbxsync-local.conf"]` + "\n"
	a.write("extensions.conf", seedExtensions, 0o644)
	a.write("pbxsync-local.conf", "systemname = pbx1\n", 0o644)
	a.write("bad\nname.conf", "evil\n", 0o644)
	b.write("pbxsync-local.conf", "systemname = pbx2\n", 0o644)
	a.start()
	b.start()
	eventually(t, waitLimit, "extensions.conf arrives", func() error {
		_, err := os.Stat(b.path("extensions.conf"))
		return err
	})
	a.write("sip.conf", "[general]\n", 0o644)
	eventually(t, waitLimit, "a later change arrives", func() error {
		_, err := os.Stat(b.path("sip.conf"))
		return err
	})
	if got := string(b.read("pbxsync-local.conf")); got != "systemname = pbx2\n" {
		t.Errorf("b's excluded pbxsync-local.conf was overwritten: %q", got)
	}
	if !b.logHas("refusing paths of an announcement", "pbxsync-local.conf") {
		t.Error("b does not log the refused path")
	}
	if st, _ := b.jobStatus("conf"); !strings.Contains(strings.Join(st.Refused, "\n"), "pbxsync-local.conf") {
		t.Errorf("b's status does not list the refused path: %v", st.Refused)
	}
	if _, err := os.Lstat(b.path("bad\nname.conf")); err == nil {
		t.Error("a name with a newline reached the target")
	}
	if st, _ := a.jobStatus("conf"); !strings.Contains(strings.Join(st.Refused, "\n"), "control character") {
		t.Errorf("a's status does not report the refused name: %v", st.Refused)
	}
}

// TestAdmitChanges: admitting a change of the announced index gives what
// admitting the whole new index gives — new refused names and excluded
// paths, a refused directory's new children, a file that becomes a
// directory and back, setuid bits — one step after another.
func TestAdmitChanges(t *testing.T) {
	t.Parallel()
	f, err := hostmon.NewFilter(nil, []string{"local-*.conf"})
	if err != nil {
		t.Fatal(err)
	}
	file := func(p string, mode fs.FileMode) index.Item {
		return index.Item{Path: p, Kind: index.KindFile, Mode: mode, Size: 1, Hash: index.Sum([]byte(p))}
	}
	dir := func(p string) index.Item { return index.Item{Path: p, Kind: index.KindDir, Mode: 0o755} }
	announced := index.New(0)
	for i := range 50 {
		it := file(fmt.Sprintf("d/f%02d.conf", i), 0o644)
		announced.Set(it)
	}
	announced.Set(dir("d"))
	steps := []struct {
		name   string
		add    []index.Item
		remove []string
	}{
		{"an edit", []index.Item{file("d/f07.conf", 0o640)}, nil},
		{"an excluded file", []index.Item{file("d/local-x.conf", 0o644)}, nil},
		{"a refused directory and its children", []index.Item{dir("bad\x1bdir"), file("bad\x1bdir/in.conf", 0o644)}, nil},
		{"a setuid file", []index.Item{file("d/agi", 0o755|fs.ModeSetuid)}, nil},
		{"a file becomes a directory", []index.Item{dir("d/f09.conf"), file("d/f09.conf/x", 0o644)}, nil},
		{"back to a file", []index.Item{file("d/f09.conf", 0o644)}, []string{"d/f09.conf/x"}},
		{"the refused directory goes", nil, []string{"bad\x1bdir", "bad\x1bdir/in.conf"}},
	}
	ad := admit(announced, f, false)
	for _, st := range steps {
		var paths []string
		for _, it := range st.add {
			announced.Set(it)
			paths = append(paths, it.Path)
		}
		for _, p := range st.remove {
			announced.Delete(p)
			paths = append(paths, p)
		}
		ad = admitChanges(ad, announced, paths, f, false)
		full := admit(announced, f, false)
		if !index.SameItems(ad.want, full.want) {
			t.Fatalf("%s: want differs from admitting the whole index", st.name)
		}
		if len(ad.refused) != len(full.refused) || (len(full.refused) > 0 && !reflect.DeepEqual(ad.refused, full.refused)) {
			t.Fatalf("%s: refused %v, admitting the whole index refuses %v", st.name, ad.refused, full.refused)
		}
	}
}
