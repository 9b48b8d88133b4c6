package syncer

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"pbxsync/internal/index"
	"pbxsync/internal/store"
)

// guardFixture is a tree and a mesh apply over it that deletes files, removes
// a directory, makes one, replaces files and creates others.
type guardFixture struct {
	a    *Applier
	ops  []Op
	to   index.Index       // the index ops were made towards
	old  map[string]string // the tree before (path → content, "/" a directory)
	want map[string]string // the tree after the apply
}

func newGuardFixture(t *testing.T) *guardFixture {
	t.Helper()
	a := newApplier(t)
	old := map[string]string{"a.conf": "a old\n", "b.conf": "b old\n", "d.conf": "d old\n", "olddir": "/", "olddir/x.conf": "x old\n"}
	have := index.New(0)
	for p, c := range old {
		full := filepath.Join(a.Root, filepath.FromSlash(p))
		if c == "/" {
			if err := os.Mkdir(full, 0o755); err != nil {
				t.Fatal(err)
			}
			have.Set(index.Item{Path: p, Kind: index.KindDir, Mode: 0o755})
			continue
		}
	}
	for p, c := range old {
		if c == "/" {
			continue
		}
		if err := os.WriteFile(filepath.Join(a.Root, filepath.FromSlash(p)), []byte(c), 0o644); err != nil {
			t.Fatal(err)
		}
		have.Set(index.Item{Path: p, Kind: index.KindFile, Size: int64(len(c)), Mode: 0o644, Hash: index.Sum([]byte(c))})
	}
	want := map[string]string{"a.conf": "a new\n", "b.conf": "b new\n", "c.conf": "c new\n", "sub": "/", "sub/e.conf": "e new\n"}
	wantIx := index.New(0)
	for p, c := range want {
		if c == "/" {
			wantIx.Set(index.Item{Path: p, Kind: index.KindDir, Mode: 0o755, MTime: 1_700_000_000_000_000_000})
			continue
		}
		wantIx.Set(a.put(t, p, c, 0o644))
	}
	return &guardFixture{a: a, ops: Plan(have, wantIx), to: wantIx, old: old, want: want}
}

// treeHolds fails t unless root holds exactly want (path → content, "/"
// a directory); when names the moment in the errors.
func treeHolds(t *testing.T, root string, want map[string]string, when string) {
	t.Helper()
	got := guardTree(t, root)
	for p, c := range want {
		if got[p] != c {
			t.Errorf("%s holds %q%s, want %q", p, got[p], when, c)
		}
	}
	for p := range got {
		if _, ok := want[p]; !ok {
			t.Errorf("%s is there (%q)%s, want none", p, got[p], when)
		}
	}
}

// guardTree returns what root holds (path → content, "/" a directory).
func guardTree(t *testing.T, root string) map[string]string {
	t.Helper()
	got := map[string]string{}
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil || p == root {
			return err
		}
		rel := filepath.ToSlash(strings.TrimPrefix(p, root+"/"))
		if d.IsDir() {
			got[rel] = "/"
			return nil
		}
		b, err := os.ReadFile(p)
		got[rel] = string(b)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return got
}

// checkClean fails t when the apply left a journal, a staged or
// displaced file, or a kept one.
func (f *guardFixture) checkClean(t *testing.T) {
	t.Helper()
	if _, ok, err := f.a.Store.ReadJournal(f.a.Job); err != nil || ok {
		t.Errorf("journal left after the apply: %v %v", ok, err)
	}
	ents, _ := os.ReadDir(f.a.Staging)
	for _, e := range ents {
		if f.a.ownStaged(e.Name()) || strings.HasSuffix(e.Name(), ".kept") {
			t.Errorf("file %s left in the staging directory", e.Name())
		}
	}
}

// TestGuardedRenamesKeepAnEditAtEachRename: a local write that lands
// exactly between a mesh apply's last check and one of its renames (the
// beforeGuardedRename hook puts it there) is neither replaced nor
// removed: a file created where the apply creates one, an editor's
// rename over a file it replaces or deletes, a write in place, a delete
// under a write. The apply is refused and, wherever in its renames that
// was, the tree is all-old again with the edit in it (the writes, delete,
// rmdir and mkdir done before it undone), no journal, staged or displaced
// file left. With plain renames after the check (as before renameat2) the
// member's version replaced every one of these edits. Without an edit,
// or with a delete racing the apply's own delete, the apply goes through.
func TestGuardedRenamesKeepAnEditAtEachRename(t *testing.T) {
	t.Parallel()
	type edit struct {
		path, how string
		refused   bool
	}
	edits := []edit{{how: "none"}}
	for _, p := range []string{"a.conf", "b.conf"} { // replaced
		for _, how := range []string{"rename over", "in place", "delete"} {
			edits = append(edits, edit{p, how, true})
		}
	}
	for _, p := range []string{"c.conf", "sub/e.conf"} { // created
		edits = append(edits, edit{p, "create", true})
	}
	for _, p := range []string{"d.conf", "olddir/x.conf"} { // deleted
		edits = append(edits, edit{p, "rename over", true}, edit{p, "in place", true}, edit{p, "delete", false})
	}
	for _, ed := range edits {
		t.Run(ed.path+" "+ed.how, func(t *testing.T) {
			t.Parallel()
			f := newGuardFixture(t)
			a := f.a
			guard, err := newPathGuard(a.Root, opPaths(f.ops))
			if err != nil {
				t.Fatal(err)
			}
			a.guard = guard
			content := "local edit of " + ed.path + ", longer than the file\n"
			renamed := 0
			a.beforeGuardedRename = func(p string) {
				renamed++
				if p != ed.path {
					return
				}
				full := filepath.Join(a.Root, filepath.FromSlash(p))
				switch ed.how {
				case "rename over":
					tmp := full + ".tmp~"
					if err := os.WriteFile(tmp, []byte(content), 0o644); err != nil {
						t.Error(err)
					}
					if err := os.Rename(tmp, full); err != nil {
						t.Error(err)
					}
				case "in place":
					fl, err := os.OpenFile(full, os.O_WRONLY|os.O_TRUNC, 0)
					if err != nil {
						t.Error(err)
						return
					}
					fl.WriteString(content)
					fl.Close()
				case "create":
					if err := os.WriteFile(full, []byte(content), 0o644); err != nil {
						t.Error(err)
					}
				case "delete":
					if err := os.Remove(full); err != nil {
						t.Error(err)
					}
				}
			}
			err = a.Apply(context.Background(), 1, f.ops, IndexLookup(f.to))
			want := f.want
			if ed.refused {
				if !errors.Is(err, errLocalChange) {
					t.Fatalf("apply with %s %s before its rename: %v, want a refusal", ed.how, ed.path, err)
				}
				want = map[string]string{}
				for p, c := range f.old {
					want[p] = c
				}
				switch ed.how {
				case "delete":
					delete(want, ed.path)
				case "create":
					want[ed.path] = content
					if d := index.Parent(ed.path); d != "" {
						want[d] = "/" // not empty: the undo leaves it
					}
				default:
					want[ed.path] = content
				}
			} else if err != nil {
				t.Fatalf("apply: %v", err)
			}
			if ed.how != "none" && renamed == 0 {
				t.Fatal("the hook never ran")
			}
			treeHolds(t, a.Root, want, "")
			f.checkClean(t)
		})
	}
}

// TestRecoverOfAGuardedApply: a member killed in the middle of a guarded
// apply's renames leaves its journal (Exchange) and entries at every
// stage: set aside or swapped already (the staged name holds the old
// file), not yet renamed, renamed; and a local file swapped out or set
// aside before the apply could check it. And while the agent was down,
// files were edited, created and removed where entries not yet done
// rename or delete. Recover finishes what the apply did and leaves every
// local change: each is a local version the member's is decided against
// once the job runs. The staging directory ends empty. Rolled forward as
// a plain journal, the displaced old file was renamed back over the
// member's version, the local edits were replaced or removed, and a
// local file swapped out was deleted with the staging files.
func TestRecoverOfAGuardedApply(t *testing.T) {
	t.Parallel()
	a := newApplier(t)
	write := func(name, content string) {
		t.Helper()
		if err := os.WriteFile(name, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	in := func(p string) string { return filepath.Join(a.Root, p) }
	sum := func(c string) index.Hash { return index.Sum([]byte(c)) }
	var entries []store.JournalEntry
	n := uint64(0)
	// entry adds an entry for p: its staged name holds staged ("" none),
	// the tree tree ("" none)
	entry := func(op, p, old, new, staged, tree string) {
		n++
		e := store.JournalEntry{Path: p, Op: op, Staged: a.stagingName(n), Mode: 0o644}
		if old != "" {
			e.OldHash = sum(old)
		}
		if new != "" {
			e.Hash = sum(new)
		}
		if staged != "" {
			write(e.Staged, staged)
		}
		if tree != "" {
			write(in(p), tree)
		}
		entries = append(entries, e)
	}
	entry(jDelete, "d.conf", "d old\n", "", "d old\n", "")               // set aside
	entry(jDelete, "e.conf", "e old\n", "", "", "e old\n")               // not yet
	entry(jDelete, "f.conf", "f old\n", "", "", "f edit\n")              // not yet; edited while down
	entry(jDelete, "g.conf", "g old\n", "", "g edit\n", "")              // a local edit set aside before its check
	entry(jWrite, "a.conf", "a old\n", "a new\n", "a old\n", "a new\n")  // swapped
	entry(jWrite, "b.conf", "b old\n", "b new\n", "b new\n", "b old\n")  // not yet
	entry(jWrite, "c.conf", "", "c new\n", "", "c new\n")                // created
	entry(jWrite, "h.conf", "h old\n", "h new\n", "h new\n", "h edit\n") // not yet; edited while down
	entry(jWrite, "i.conf", "", "i new\n", "i new\n", "i local\n")       // not yet; created while down
	entry(jWrite, "k.conf", "k old\n", "k new\n", "k edit\n", "k new\n") // a local edit swapped out before its check
	entry(jWrite, "m.conf", "m old\n", "m new\n", "m new\n", "")         // not yet; removed while down
	j := &store.Journal{Job: a.Job, Generation: 1, Exchange: true, Entries: entries}
	if err := a.Store.WriteJournal(a.Job, j); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Recover(context.Background()); err != nil {
		t.Fatal(err)
	}
	treeHolds(t, a.Root, map[string]string{"a.conf": "a new\n", "b.conf": "b new\n", "c.conf": "c new\n",
		"f.conf": "f edit\n", "g.conf": "g edit\n", "h.conf": "h edit\n", "i.conf": "i local\n", "k.conf": "k edit\n"}, " after Recover")
	if ents, _ := os.ReadDir(a.Staging); len(ents) != 0 {
		t.Errorf("staging directory holds %d files after Recover", len(ents))
	}
	if _, ok, err := a.Store.ReadJournal(a.Job); err != nil || ok {
		t.Errorf("journal left after Recover: %v %v", ok, err)
	}
}
