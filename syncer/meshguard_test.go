package syncer

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"pbxsync/internal/index"
)

// TestStampGuardKeepsAnEditRacingTheApply: a local edit that lands after
// a mesh apply's last rescan, while its journal is written (the
// afterJournal hook puts it exactly there), is not renamed over: the
// apply is abandoned with the tree holding the edit, no journal and no
// staged file left. Before BeforeRename the member's version replaced
// the edit, which no scan had seen: a lost write (TestMeshChaos under
// load, issue #13). Without an edit the guard lets the apply through.
func TestStampGuardKeepsAnEditRacingTheApply(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name   string
		had    bool   // the tree holds the path before the apply
		delete bool   // the apply removes it (else writes the member's version)
		edit   string // what the racing local edit writes ("" none, "-" removes)
		want   string // the path's content after ("" absent)
		ok     bool   // the apply goes through
	}{
		{name: "write over an edit by rename", had: true, edit: "local edit\n", want: "local edit\n"},
		{name: "write over an in-place edit", had: true, edit: "in place\n", want: "in place\n"},
		{name: "write where a file is created", edit: "created here\n", want: "created here\n"},
		{name: "delete over an edit", had: true, delete: true, edit: "local edit\n", want: "local edit\n"},
		{name: "write over a local delete", had: true, edit: "-", want: ""},
		{name: "no edit: write", had: true, want: "member's version\n", ok: true},
		{name: "no edit: delete", had: true, delete: true, want: "", ok: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			a := newApplier(t)
			full := filepath.Join(a.Root, "s1.conf")
			have := index.New(0)
			if tc.had {
				if err := os.WriteFile(full, []byte("old\n"), 0o644); err != nil {
					t.Fatal(err)
				}
				have.Set(index.Item{Path: "s1.conf", Kind: index.KindFile, Size: 4, Mode: 0o644, Hash: index.Sum([]byte("old\n"))})
			}
			want := index.New(0)
			if !tc.delete {
				want.Set(a.put(t, "s1.conf", "member's version\n", 0o644))
			}
			ops := Plan(have, want)
			guard, err := newPathGuard(a.Root, opPaths(ops))
			if err != nil {
				t.Fatal(err)
			}
			a.guard = guard
			a.afterJournal = func() {
				switch {
				case tc.edit == "-":
					os.Remove(full)
				case tc.name == "write over an in-place edit":
					f, err := os.OpenFile(full, os.O_WRONLY|os.O_TRUNC, 0)
					if err != nil {
						t.Fatal(err)
					}
					f.WriteString(tc.edit)
					f.Close()
				case tc.edit != "":
					tmp := full + ".tmp~"
					if err := os.WriteFile(tmp, []byte(tc.edit), 0o644); err != nil {
						t.Fatal(err)
					}
					if err := os.Rename(tmp, full); err != nil {
						t.Fatal(err)
					}
				}
			}
			err = a.Apply(context.Background(), 1, ops, IndexLookup(want))
			if tc.ok && err != nil {
				t.Fatalf("apply with no edit in its way: %v", err)
			}
			if !tc.ok && err == nil {
				t.Fatalf("apply renamed over a local edit made after its rescan")
			}
			b, rerr := os.ReadFile(full)
			if got := string(b); rerr != nil && tc.want != "" || rerr == nil && got != tc.want {
				t.Errorf("s1.conf holds %q (%v), want %q", got, rerr, tc.want)
			}
			if _, ok, err := a.Store.ReadJournal(a.Job); err != nil || ok {
				t.Errorf("journal left after the apply: %v %v", ok, err)
			}
			ents, _ := os.ReadDir(a.Staging)
			for _, e := range ents {
				if a.ownStaged(e.Name()) {
					t.Errorf("staged file %s left after the apply", e.Name())
				}
			}
		})
	}
}
