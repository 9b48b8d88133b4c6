package syncer

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"pbxsync/internal/index"
	"pbxsync/internal/store"
	"pbxsync/internal/wire"
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
	t.Parallel()
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
	want := index.New(0)
	for _, it := range []index.Item{a.put(t, "extensions.conf", "new", 0o640), a.put(t, "sub/new/x.conf", "x", 0o644)} {
		want.Set(it)
	}
	want.Set(index.Item{Path: "sub", Kind: index.KindDir, Mode: 0o755})
	want.Set(index.Item{Path: "sub/new", Kind: index.KindDir, Mode: 0o755})
	have := index.Of(
		index.Item{Path: "extensions.conf", Kind: index.KindFile, Size: 3, Mode: 0o640, Hash: index.Sum([]byte("old"))},
		index.Item{Path: "sub", Kind: index.KindDir, Mode: 0o755},
	)
	if err := a.Apply(ctx, 1, Plan(have, want), IndexLookup(want)); err != nil {
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

// TestRecoverNeverRollsForwardABadGeneration: a journal left behind by an
// apply whose generation was then marked bad is dropped, not executed; a
// journal that cannot be finished is dropped and its generation marked
// bad, so the job can start.
func TestRecoverNeverRollsForwardABadGeneration(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name      string
		state     store.State
		breakIt   bool // the staged files are gone: the journal cannot be finished
		wantState store.State
	}{
		{"bad", store.StateBad, false, store.StateBad},
		{"rolled-back", store.StateRolledBack, false, store.StateRolledBack},
		{"unfinishable", store.StateApplying, true, store.StateBad},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := newCrashSetup(t, 7)
			ctx := context.Background()
			a, st, err := openApplier(c.dir)
			if err != nil {
				t.Fatal(err)
			}
			defer st.Close()
			n, err := st.AddGeneration(ctx, &store.Generation{Job: crashJob, Time: time.Now(), Origin: "a", State: tc.state, Reason: "test", Index: c.want})
			if err != nil {
				t.Fatal(err)
			}
			j := &store.Journal{Job: crashJob, Generation: n}
			for _, op := range crashPlan(t, c.root(), c.want) {
				w, _ := c.want.Get(op.Path)
				s, err := a.stage(ctx, w, op.Have().Kind == index.KindFile, a.newOwners())
				if err != nil {
					t.Fatal(err)
				}
				j.Entries = append(j.Entries, store.JournalEntry{Op: jWrite, Path: op.Path, Staged: a.stagingName(s),
					Hash: w.Hash, OldHash: op.Have().Hash, Mode: uint32(w.Mode.Perm()), MTime: w.MTime})
			}
			if tc.breakIt {
				// a directory where the first file goes: its rename fails
				first := filepath.Join(c.root(), filepath.FromSlash(j.Entries[0].Path))
				if err := os.Remove(first); err != nil {
					t.Fatal(err)
				}
				if err := os.MkdirAll(filepath.Join(first, "x"), 0o755); err != nil {
					t.Fatal(err)
				}
				j.Entries = j.Entries[:1]
			}
			if err := st.WriteJournal(crashJob, j); err != nil {
				t.Fatal(err)
			}
			if _, err := a.Recover(ctx); err != nil {
				t.Fatalf("Recover: %v (a job that cannot start helps no one)", err)
			}
			if !tc.breakIt {
				oldN, newN, err := c.versions()
				if err != nil || newN != 0 || oldN != crashFiles {
					t.Fatalf("after Recover: %d old, %d new (%v): a %s generation was rolled into the tree", oldN, newN, err, tc.state)
				}
			}
			checkNoStaged(t, a.Staging)
			if _, ok, err := st.ReadJournal(crashJob); ok || err != nil {
				t.Fatalf("journal after Recover: present %v, err %v", ok, err)
			}
			g, err := st.Generation(crashJob, n)
			if err != nil {
				t.Fatal(err)
			}
			if g.State != tc.wantState {
				t.Errorf("generation state %s, want %s", g.State, tc.wantState)
			}
		})
	}
}

// TestStagingDirRefusesALink: a staging directory inside the job root that
// a local user replaced by a symlink is refused, not followed.
func TestStagingDirRefusesALink(t *testing.T) {
	t.Parallel()
	base := t.TempDir()
	root, elsewhere := filepath.Join(base, "root"), filepath.Join(base, "elsewhere")
	for _, d := range []string{root, elsewhere} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Symlink(elsewhere, filepath.Join(root, ".pbxsync-staging")); err != nil {
		t.Fatal(err)
	}
	// a data_dir that cannot be created: staging must go inside the root
	blocker := filepath.Join(base, "file")
	if err := os.WriteFile(blocker, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if dir, err := StagingDir(root, filepath.Join(blocker, "staging")); err == nil {
		t.Fatalf("StagingDir chose %s through a symlink", dir)
	}
}

// TestRecoverAcrossAStagingSwitch: an apply staged in data_dir, then the
// job root became another mount (a bind mount at the next start), so the
// job stages inside the root now: Recover still finishes the journal
// instead of refusing to start.
func TestRecoverAcrossAStagingSwitch(t *testing.T) {
	t.Parallel()
	c := newCrashSetup(t, 3)
	ctx := context.Background()
	a, st, err := openApplier(c.dir)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	j := &store.Journal{Job: crashJob, Generation: crashGen}
	for _, op := range crashPlan(t, c.root(), c.want) {
		w, _ := c.want.Get(op.Path)
		s, err := a.stage(ctx, w, op.Have().Kind == index.KindFile, a.newOwners())
		if err != nil {
			t.Fatal(err)
		}
		j.Entries = append(j.Entries, store.JournalEntry{Op: jWrite, Path: op.Path, Staged: a.stagingName(s),
			Hash: w.Hash, OldHash: op.Have().Hash, Mode: uint32(w.Mode.Perm()), MTime: w.MTime})
	}
	if err := st.WriteJournal(crashJob, j); err != nil {
		t.Fatal(err)
	}
	inside := filepath.Join(c.root(), ".pbxsync-staging")
	if err := os.Mkdir(inside, 0o700); err != nil {
		t.Fatal(err)
	}
	b := &Applier{Job: crashJob, Root: c.root(), Staging: inside, DataStaging: a.Staging, Store: st, Log: a.Log}
	if _, err := b.Recover(ctx); err != nil {
		t.Fatalf("Recover after the staging directory changed: %v", err)
	}
	c.checkAllNew(t, a.Staging)
}

// TestApplyMetaNeverFollowsASymlink: a file swapped for a symlink to a
// file outside the root before a mode/mtime change is applied: the change
// is refused and the outside file keeps its mode and mtime.
func TestApplyMetaNeverFollowsASymlink(t *testing.T) {
	t.Parallel()
	base := t.TempDir()
	root, outside := filepath.Join(base, "root"), filepath.Join(base, "secret")
	if err := os.MkdirAll(root, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(outside, []byte("secret"), 0o600); err != nil {
		t.Fatal(err)
	}
	before, err := os.Stat(outside)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(outside, filepath.Join(root, "f.conf")); err != nil {
		t.Fatal(err)
	}
	st, err := store.Open(filepath.Join(base, "store"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	a := &Applier{Job: "conf", Root: root, Staging: filepath.Join(base, "staging"), Store: st, Log: slog.New(slog.DiscardHandler)}
	if err := os.MkdirAll(a.Staging, 0o700); err != nil {
		t.Fatal(err)
	}
	op := Op{Kind: OpMeta, Path: "f.conf"}
	want := index.Of(index.Item{Path: "f.conf", Kind: index.KindFile, Mode: 0o4777, MTime: 12345})
	if err := a.Apply(context.Background(), 1, []Op{op}, IndexLookup(want)); err == nil || !strings.Contains(err.Error(), "symlink") {
		t.Errorf("Apply of a mode change through a symlink: %v, want a refusal naming the symlink", err)
	}
	after, err := os.Stat(outside)
	if err != nil {
		t.Fatal(err)
	}
	if after.Mode() != before.Mode() || !after.ModTime().Equal(before.ModTime()) {
		t.Fatalf("the file outside the root changed: %v %v -> %v %v", before.Mode(), before.ModTime(), after.Mode(), after.ModTime())
	}
}

// TestApplyRefusesCorruptStoredContent: content damaged in the store after
// it was put (a bit flipped on disk) is never staged into the tree: the
// apply fails with store.ErrCorrupt and the tree does not have the file.
func TestApplyRefusesCorruptStoredContent(t *testing.T) {
	t.Parallel()
	a := newApplier(t)
	ctx := context.Background()
	// random bytes: stored as a raw frame in a blob file, so a flipped
	// byte is still a valid zstd frame, of other content
	content := make([]byte, 1<<20)
	rand.NewChaCha8([32]byte{7}).Read(content)
	it := a.put(t, "sounds/big.wav", string(content), 0o644)
	if err := a.Store.Sync(); err != nil { // the blob is in place now
		t.Fatal(err)
	}
	blob := a.Store.BlobPath(it.Hash)
	f, err := os.OpenFile(blob, os.O_RDWR, 0)
	if err != nil {
		t.Fatalf("the blob is not a file in place: %v", err)
	}
	st, _ := f.Stat()
	var b [1]byte
	f.ReadAt(b[:], st.Size()-100)
	b[0] ^= 0x40
	f.WriteAt(b[:], st.Size()-100)
	f.Close()
	want := index.Of(it, index.Item{Path: "sounds", Kind: index.KindDir, Mode: 0o755})
	err = a.Apply(ctx, 1, Plan(index.Index{}, want), IndexLookup(want))
	if !errors.Is(err, store.ErrCorrupt) {
		t.Fatalf("apply of corrupt stored content: %v, want store.ErrCorrupt", err)
	}
	if _, err := os.Lstat(filepath.Join(a.Root, "sounds", "big.wav")); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("the tree holds the file after a failed apply: %v", err)
	}
}

// writeStaging creates a staging file of a holding content, left open.
func (a *Applier) writeStaging(t *testing.T, content string) (*os.File, string) {
	t.Helper()
	f, name, err := a.newStagingFile(0o600)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteString(content); err != nil {
		t.Fatal(err)
	}
	return f, name
}

// TestApplyTakesPrestagedFile: a file staged while its content was
// fetched is what the apply renames into the tree (no second copy from
// the store), with the item's mode and mtime; one no apply took is removed
// by dropPrestaged.
func TestApplyTakesPrestagedFile(t *testing.T) {
	t.Parallel()
	a := newApplier(t)
	ctx := context.Background()
	it := a.put(t, "sounds/a.wav", "content fetched and staged at once", 0o640)
	other := a.put(t, "sounds/b.wav", "fetched, never applied", 0o644)
	stageWith := func(content string) (string, os.FileInfo) {
		f, name := a.writeStaging(t, content)
		f.Close()
		fi, err := os.Stat(name)
		if err != nil {
			t.Fatal(err)
		}
		return name, fi
	}
	name, before := stageWith("content fetched and staged at once")
	a.prestage(it.Hash, name, stagedMeta{})
	leftover, _ := stageWith("fetched, never applied")
	a.prestage(other.Hash, leftover, stagedMeta{})
	want := index.Of(it, index.Item{Path: "sounds", Kind: index.KindDir, Mode: 0o755})
	if err := a.Apply(ctx, 1, Plan(index.Index{}, want), IndexLookup(want)); err != nil {
		t.Fatal(err)
	}
	after, err := os.Stat(filepath.Join(a.Root, "sounds", "a.wav"))
	if err != nil {
		t.Fatal(err)
	}
	if !os.SameFile(before, after) {
		t.Error("the apply staged the content again instead of taking the prestaged file")
	}
	if after.Mode().Perm() != 0o640 || after.ModTime().UnixNano() != it.MTime {
		t.Errorf("prestaged file applied with mode %v mtime %d, want 0640 and %d", after.Mode().Perm(), after.ModTime().UnixNano(), it.MTime)
	}
	a.dropPrestaged()
	if _, err := os.Lstat(leftover); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("a prestaged file no apply took is still there: %v", err)
	}
	if _, _, ok := a.takePrestaged(it.Hash); ok {
		t.Error("the taken file is still offered")
	}
	// the last prestaged file taken, the set is let go: after an initial
	// sync it held ~6.6 MB (a map ~11 MB) through the rest of the apply
	third := a.put(t, "sounds/c.wav", "third", 0o644)
	name, _ = stageWith("third")
	a.prestage(third.Hash, name, stagedMeta{})
	if _, _, ok := a.takePrestaged(third.Hash); !ok {
		t.Fatal("a prestaged file is not offered")
	}
	if a.prestaged.slots != nil || a.prestaged.chunks != nil {
		t.Error("the prestaged set is kept once its last file is taken")
	}
	os.Remove(name)
}

// TestApplyKeepsMetaSetInFetch: the mode and mtime a fetch gave its
// staging file through the descriptor (setStagedMeta) are not set again by
// path in the apply; a setuid mode is left to the apply, which sets it.
func TestApplyKeepsMetaSetInFetch(t *testing.T) {
	t.Parallel()
	a := newApplier(t)
	ctx := context.Background()
	plain := a.put(t, "bin/plain", "set while fetched", 0o640)
	suid := a.put(t, "bin/suid", "setuid, set by the apply", 0o4750)
	suid.Mode = fs.ModeSetuid | 0o750
	var metas []stagedMeta
	for _, it := range []index.Item{plain, suid} {
		f, name := a.writeStaging(t, map[string]string{plain.Path: "set while fetched", suid.Path: "setuid, set by the apply"}[it.Path])
		m := setStagedMeta(f, it, false)
		f.Close()
		metas = append(metas, m)
		a.prestage(it.Hash, name, m)
	}
	if !metas[0].set || metas[0].mode != 0o640 || metas[0].mtime != plain.MTime {
		t.Fatalf("a plain file's staged meta is %+v, want mode 0640 and mtime %d set", metas[0], plain.MTime)
	}
	if metas[1].set {
		t.Fatalf("a setuid file's staged meta is %+v, want none set", metas[1])
	}
	// what the apply would set again by path shows: the staged file is
	// made to differ from what its meta says
	plainID, m, _ := a.takePrestaged(plain.Hash)
	plainName := a.stagingName(plainID)
	if err := os.Chmod(plainName, 0o600); err != nil {
		t.Fatal(err)
	}
	a.prestage(plain.Hash, plainName, m)
	want := index.Of(plain, suid, index.Item{Path: "bin", Kind: index.KindDir, Mode: 0o755})
	if err := a.Apply(ctx, 1, Plan(index.Index{}, want), IndexLookup(want)); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Lstat(filepath.Join(a.Root, "bin", "plain"))
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 || fi.ModTime().UnixNano() != plain.MTime {
		t.Errorf("file applied with mode %v mtime %d: the apply set the mode again (want the staged 0600 kept, mtime %d)", fi.Mode().Perm(), fi.ModTime().UnixNano(), plain.MTime)
	}
	fi, err = os.Lstat(filepath.Join(a.Root, "bin", "suid"))
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode()&(fs.ModePerm|fs.ModeSetuid) != fs.ModeSetuid|0o750 || fi.ModTime().UnixNano() != suid.MTime {
		t.Errorf("setuid file applied with mode %v mtime %d, want u+s 0750 and %d", fi.Mode(), fi.ModTime().UnixNano(), suid.MTime)
	}
}

// TestApplyHoldsNoJournalBesideItsOps: a large apply keeps the ids of its
// staged files beside its ops, not a journal's entries and their staged
// names (~230 bytes a write, 22 MB at an initial sync of 100,000 files,
// held from the stage step to the end of the execute step): what it holds
// once its journal (in parts) is written is measured in the afterJournal
// hook, and the tree is checked afterwards.
func TestApplyHoldsNoJournalBesideItsOps(t *testing.T) {
	const files, dirs = 1000, 10
	a := newApplier(t)
	// a journal in parts, as a large apply's, and one syncfs for the
	// staged files
	st, err := store.Open(filepath.Join(t.TempDir(), "store"), slog.New(slog.DiscardHandler), store.WithJournalParts(128))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	a.Store, a.syncfsMin = st, 1
	content := "[endpoint]\ntype=endpoint\n"
	blob := a.put(t, "x", content, 0o644)
	base := t.TempDir()
	got := uint64(math.MaxUint64)
	// the least of two applies: what another goroutine allocates
	// meanwhile is not counted against it
	for n := range 2 {
		root := filepath.Join(base, fmt.Sprint(n))
		if err := os.Mkdir(root, 0o755); err != nil {
			t.Fatal(err)
		}
		a.Root = root
		want := index.New(0)
		for d := range dirs {
			p := fmt.Sprintf("d%02d", d)
			want.Set(index.Item{Path: p, Kind: index.KindDir, Mode: fsMode(0o755), MTime: 1})
		}
		for i := range files {
			it := blob
			it.Path = fmt.Sprintf("d%02d/f%05d.conf", i%dirs, i)
			want.Set(it)
		}
		ops := Plan(index.Index{}, want)
		var m0, m1 runtime.MemStats
		a.afterJournal = func() {
			runtime.GC()
			runtime.ReadMemStats(&m1)
		}
		runtime.GC()
		runtime.ReadMemStats(&m0)
		if err := a.Apply(context.Background(), uint64(n+1), ops, IndexLookup(want)); err != nil {
			t.Fatal(err)
		}
		if m1.HeapAlloc > m0.HeapAlloc {
			got = min(got, m1.HeapAlloc-m0.HeapAlloc)
		} else {
			got = 0
		}
		for p, it := range want.All() {
			b, err := os.ReadFile(filepath.Join(root, filepath.FromSlash(p)))
			if it.Kind == index.KindDir {
				if fi, serr := os.Stat(filepath.Join(root, p)); serr != nil || !fi.IsDir() {
					t.Fatalf("%s: not a directory after the apply (%v)", p, serr)
				}
				continue
			}
			if err != nil || string(b) != content {
				t.Fatalf("%s after the apply: %q, %v", p, b, err)
			}
		}
	}
	t.Logf("held %d bytes once the journal of %d writes was written", got, files)
	if bound := uint64(files+dirs)*32 + 96<<10; got > bound {
		t.Fatalf("an apply of %d writes held %d bytes more once its journal was written, want at most %d (an id and an index a write)", files, got, bound)
	}
}

// TestApplyCountsFilesAsTheyGoInPlace: an apply's progress counts the
// bytes of each file as it is staged and the file once it is in place, so
// that a large apply does not show all its files done (and no time left)
// while it still renames them.
func TestApplyCountsFilesAsTheyGoInPlace(t *testing.T) {
	t.Parallel()
	a := newApplier(t)
	var tr progressTracker
	a.progress = &tr
	want := index.New(0)
	var size uint64
	for i, content := range []string{"[a]\n", "[bb]\n", "[ccc]\n"} {
		it := a.put(t, fmt.Sprintf("f%d.conf", i), content, 0o644)
		want.Set(it)
		size += uint64(it.Size)
	}
	var journaled *Progress
	a.afterJournal = func() { journaled = tr.snapshot(time.Now().Add(time.Second)) }
	if err := a.Apply(context.Background(), 1, Plan(index.Index{}, want), IndexLookup(want)); err != nil {
		t.Fatal(err)
	}
	if journaled == nil || journaled.Phase != wire.PhaseApplying || journaled.Files != 0 || journaled.FilesTotal != 3 || journaled.Bytes != size || journaled.BytesTotal != size || journaled.ETASeconds != -1 {
		t.Errorf("staged, before the renames: %+v; want 0/3 files, %d/%d bytes, no estimate", journaled, size, size)
	}
	if p := tr.snapshot(time.Now()); p.Files != 3 || p.Bytes != size || p.ETASeconds != 0 {
		t.Errorf("after the apply: %+v; want 3/3 files, %d bytes, nothing left", p, size)
	}
}
