package syncer

// Crash safety of the Applier: an apply interrupted at any instant leaves
// every file either its old or its new version, and Recover completes a
// journaled apply.

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io/fs"
	"log/slog"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/fsnotify/fsnotify"

	"pbxsync/hostmon"
	"pbxsync/internal/index"
	"pbxsync/internal/store"
)

const (
	crashJob   = "conf"
	crashFiles = 200
	crashGen   = 7
	crashEnv   = "PBXSYNC_TEST_CRASH_DIR"
	// crashSyncfsEnv makes the child sync its staged files with syncfs
	crashSyncfsEnv = "PBXSYNC_TEST_CRASH_SYNCFS"
)

// crashSetup is a job root with crashFiles old files and a store holding
// their new versions; want is the index after the apply.
type crashSetup struct {
	dir      string
	old, new map[string]index.Hash
	want     index.Index
}

func (c *crashSetup) root() string     { return filepath.Join(c.dir, "tree") }
func (c *crashSetup) storeDir() string { return filepath.Join(c.dir, "store") }

func newCrashSetup(t *testing.T, seed uint64) *crashSetup {
	t.Helper()
	c := &crashSetup{dir: t.TempDir(), old: map[string]index.Hash{}, new: map[string]index.Hash{}}
	r := rand.New(rand.NewPCG(seed, 99))
	st, err := store.Open(c.storeDir(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	mtime := time.Date(2026, 1, 2, 3, 4, 5, 600, time.UTC).UnixNano()
	newItems := map[string]index.Item{}
	// A few distinct new contents keep the store's fsyncs few; every old
	// content is distinct from every new one.
	var newData [5][]byte
	for i := range newData {
		newData[i] = randBytes(r.Uint64(), 1<<10+r.IntN(64<<10))
	}
	for i := range crashFiles {
		rel := fmt.Sprintf("d%d/f%02d.conf", i%10, i)
		p := filepath.Join(c.root(), filepath.FromSlash(rel))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		oldData := randBytes(r.Uint64(), 1<<10+r.IntN(16<<10))
		if err := os.WriteFile(p, oldData, 0o644); err != nil {
			t.Fatal(err)
		}
		h, n, err := st.PutReader(context.Background(), bytes.NewReader(newData[i%len(newData)]))
		if err != nil {
			t.Fatal(err)
		}
		c.old[rel], c.new[rel] = index.Sum(oldData), h
		newItems[rel] = index.Item{Path: rel, Kind: index.KindFile, Size: n, Mode: 0o640, MTime: mtime + int64(i), Hash: h}
	}
	states, err := hostmon.Scan(context.Background(), c.root(), nil, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	c.want = hostmon.ToIndex(states)
	for _, it := range newItems {
		c.want.Set(it)
	}
	b, err := json.Marshal(c.want.Sorted())
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(c.dir, "want.json"), b, 0o644); err != nil {
		t.Fatal(err)
	}
	return c
}

// openApplier opens the store and an Applier for the set-up; the caller
// closes the store.
func openApplier(dir string) (*Applier, *store.Store, error) {
	// journals in parts of 64 entries: the crash tests' applies of 200
	// files write theirs as a large apply does (see store.WriteJournal)
	st, err := store.Open(filepath.Join(dir, "store"), nil, store.WithJournalParts(64))
	if err != nil {
		return nil, nil, err
	}
	root := filepath.Join(dir, "tree")
	staging, err := StagingDir(root, filepath.Join(dir, "staging"))
	if err != nil {
		st.Close()
		return nil, nil, err
	}
	return &Applier{Job: crashJob, Root: root, Staging: staging, Store: st, Log: slog.New(slog.DiscardHandler)}, st, nil
}

// crashPlan is the plan the apply runs: 50 writes (and no other change).
func crashPlan(t testing.TB, root string, want index.Index) []Op {
	states, err := hostmon.Scan(context.Background(), root, nil, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	ops := Plan(hostmon.ToIndex(states), want)
	writes := 0
	for _, op := range ops {
		if op.Kind == OpWrite {
			writes++
		}
	}
	if writes != crashFiles {
		t.Fatalf("plan has %d writes, want %d: %v", writes, crashFiles, ops)
	}
	return ops
}

// versions counts the files that hold their old and their new content;
// any other content (torn, missing) is an error.
func (c *crashSetup) versions() (oldN, newN int, err error) {
	for rel := range c.old {
		b, rerr := os.ReadFile(filepath.Join(c.root(), filepath.FromSlash(rel)))
		if rerr != nil {
			return 0, 0, fmt.Errorf("%s: %w", rel, rerr)
		}
		switch index.Sum(b) {
		case c.old[rel]:
			oldN++
		case c.new[rel]:
			newN++
		default:
			return 0, 0, fmt.Errorf("%s holds neither its old nor its new content (%d bytes)", rel, len(b))
		}
	}
	return oldN, newN, nil
}

// checkAllNew asserts every file holds its new content, mode and mtime,
// and nothing is left in the staging directory.
func (c *crashSetup) checkAllNew(t *testing.T, staging string) {
	t.Helper()
	for it := range c.want.Items() {
		if it.Kind == index.KindFile {
			checkFile(t, c.root(), it, "after recovery")
		}
	}
	checkNoStaged(t, staging)
}

// checkFile asserts the file at it.Path below root holds it: its content,
// permissions and mtime (when says when, for the message).
func checkFile(t *testing.T, root string, it index.Item, when string) {
	t.Helper()
	p := filepath.Join(root, filepath.FromSlash(it.Path))
	fi, err := os.Lstat(p)
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	if index.Sum(b) != it.Hash || !fi.Mode().IsRegular() || fi.Mode().Perm() != it.Mode.Perm() || fi.ModTime().UnixNano() != it.MTime {
		t.Fatalf("%s %s: hash ok %v, mode %v, mtime %d; want mode %v mtime %d",
			it.Path, when, index.Sum(b) == it.Hash, fi.Mode(), fi.ModTime().UnixNano(), it.Mode, it.MTime)
	}
}

func checkNoStaged(t *testing.T, staging string) {
	t.Helper()
	ents, err := os.ReadDir(staging)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), stagePrefix) {
			t.Fatalf("staged file %s left after recovery", e.Name())
		}
	}
}

// TestApplierRecoverAfterPartialRenames simulates a crash after the
// journal is written and some of the renames are done: a prefix of k of
// them, as the renames one after another leave it, and subsets that are
// no prefix, as renames in parallel would leave them (branch s14exec, not
// merged: docs/performance.md): the first few of each directory, every
// third, all but the first. Recovery must not assume a prefix.
func TestApplierRecoverAfterPartialRenames(t *testing.T) {
	t.Parallel()
	type crash struct {
		name    string
		renamed func(i int, path string) bool // entry i of the journal
	}
	var cases []crash
	for _, k := range []int{0, 1, 25, 199, crashFiles} {
		cases = append(cases, crash{fmt.Sprintf("renamed=%d", k), func(i int, _ string) bool { return i < k }})
	}
	cases = append(cases,
		// each directory's files are f<i>.conf with i%10 its number:
		// i < 40 are the first four of each
		crash{"first-of-each-dir", func(_ int, p string) bool {
			var d, f int
			fmt.Sscanf(p, "d%d/f%d.conf", &d, &f)
			return f < 40
		}},
		crash{"every-third", func(i int, _ string) bool { return i%3 == 0 }},
		crash{"all-but-first", func(i int, _ string) bool { return i > 0 }},
	)
	for n, cs := range cases {
		t.Run(cs.name, func(t *testing.T) {
			t.Parallel()
			c := newCrashSetup(t, uint64(n)+1)
			ctx := context.Background()
			a, st, err := openApplier(c.dir)
			if err != nil {
				t.Fatal(err)
			}
			// Apply, step by step, up to the crash.
			j := &store.Journal{Job: crashJob, Generation: crashGen}
			for _, op := range crashPlan(t, c.root(), c.want) {
				if op.Kind != OpWrite {
					t.Fatalf("unexpected %v", op)
				}
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
			k := 0
			for i, e := range j.Entries {
				if !cs.renamed(i, e.Path) {
					continue
				}
				if err := os.Rename(e.Staged, filepath.Join(c.root(), filepath.FromSlash(e.Path))); err != nil {
					t.Fatal(err)
				}
				k++
			}
			st.Close() // crash

			oldN, newN, err := c.versions()
			if err != nil {
				t.Fatal(err)
			}
			if oldN != crashFiles-k || newN != k {
				t.Fatalf("before recovery: %d old, %d new; want %d, %d", oldN, newN, crashFiles-k, k)
			}
			a, st, err = openApplier(c.dir)
			if err != nil {
				t.Fatal(err)
			}
			defer st.Close()
			gen, err := a.Recover(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if gen != crashGen {
				t.Errorf("Recover finished generation %d, want %d", gen, crashGen)
			}
			c.checkAllNew(t, a.Staging)
			if _, ok, err := st.ReadJournal(crashJob); ok || err != nil {
				t.Fatalf("journal after recovery: present %v, err %v", ok, err)
			}
		})
	}
}

// TestApplierCrashKill runs Apply in a child process and SIGKILLs it at
// random instants of its apply (timed from the apply's start, which the
// child signals, not from its start-up), and at the moment its journal
// appears. Every file must
// be its old or its new version; after Recover the generation is applied
// completely (journal found) or not at all (no journal), never in part.
func TestApplierCrashKill(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("spawns child processes")
	}
	// Issue 4 asks for at least 100 kills in CI; PBXSYNC_CRASH_ROUNDS
	// raises it for a soak run.
	rounds := 100
	if v, err := strconv.Atoi(os.Getenv("PBXSYNC_CRASH_ROUNDS")); err == nil && v > 0 {
		rounds = v
	}
	var full time.Duration
	outcomes := map[string]int{}
	for i := range rounds {
		c := newCrashSetup(t, uint64(100+i))
		cmd := exec.Command(os.Args[0], "-test.run=^TestHelperProcess$", "-test.count=1")
		cmd.Env = append(childEnv(), crashEnv+"="+c.dir)
		if i%10 == 4 || i%10 == 5 {
			// a fifth of the rounds (on-journal and random kills alike)
			// make the staged files durable with one syncfs, what a batch
			// of syncfsMinFiles or more does (not more: a syncfs also
			// writes back what the rest of the machine has dirty)
			cmd.Env = append(cmd.Env, crashSyncfsEnv+"=1")
		}
		var out strings.Builder
		cmd.Stdout, cmd.Stderr = &out, &out
		var journal *journalWatch
		if i > 0 && i%2 == 0 {
			journal = watchJournal(t, filepath.Join(c.storeDir(), "meta.db"))
		}
		// the child writes a byte to this pipe (its fd 3) as its apply
		// starts: its start-up, which varies most, is not timed
		applying, signal, err := os.Pipe()
		if err != nil {
			t.Fatal(err)
		}
		cmd.ExtraFiles = []*os.File{signal}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		signal.Close()
		started := func() time.Time {
			applying.Read(make([]byte, 1)) // or EOF: the child ended first
			applying.Close()
			return time.Now()
		}
		mode := "complete"
		var start time.Time
		switch {
		case i == 0:
			// run once to the end to learn how long an apply takes
			start = started()
		case i%2 == 1:
			mode = "random"
			started()
			time.Sleep(time.Duration(rand.Int64N(int64(full))))
		default:
			mode = "on-journal"
			journal.wait()
			applying.Close()
		}
		if mode != "complete" {
			cmd.Process.Kill() // SIGKILL
		}
		err = cmd.Wait()
		if mode == "complete" {
			if err != nil {
				t.Fatalf("helper: %v\n%s", err, out.String())
			}
			full = time.Since(start)
		}

		oldN, newN, err := c.versions()
		if err != nil {
			t.Fatalf("round %d (%s): after SIGKILL: %v", i, mode, err)
		}
		a, st, err := openApplier(c.dir)
		if err != nil {
			t.Fatal(err)
		}
		_, journaled, jerr := st.ReadJournal(crashJob)
		if jerr != nil {
			t.Fatalf("round %d: journal: %v", i, jerr)
		}
		if _, err := a.Recover(context.Background()); err != nil {
			t.Fatalf("round %d: Recover: %v", i, err)
		}
		st.Close()
		oldAfter, newAfter, err := c.versions()
		if err != nil {
			t.Fatalf("round %d (%s): after Recover: %v", i, mode, err)
		}
		outcome := fmt.Sprintf("killed with %d old/%d new, journal %v -> ", oldN, newN, journaled)
		switch {
		case newAfter == crashFiles:
			outcome += "all new"
			c.checkAllNew(t, a.Staging)
		case oldAfter == crashFiles && !journaled:
			outcome += "all old"
			if newN != 0 {
				t.Fatalf("round %d: %d files were new without a journal", i, newN)
			}
			checkNoStaged(t, a.Staging)
		default:
			t.Fatalf("round %d (%s): after Recover %d old and %d new (journal %v)", i, mode, oldAfter, newAfter, journaled)
		}
		outcomes[mode+": "+outcome]++
	}
	t.Logf("full apply in the child: %s; outcomes: %v", full, outcomes)
}

// journalWatch waits for a journal in a store's database file, which the
// child holds locked: it reads the file each time it is written (inotify)
// until it holds the journal's bytes (written just before the commit that
// makes it exist). Reading it in a loop instead cost a core while the
// child ran.
type journalWatch struct {
	db string
	w  *fsnotify.Watcher
}

func watchJournal(t *testing.T, db string) *journalWatch {
	w, err := fsnotify.NewWatcher()
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Add(db); err != nil {
		w.Close()
		t.Fatal(err)
	}
	return &journalWatch{db: db, w: w}
}

// wait returns when the file holds a journal, or after waitLimit (the
// child failed before it wrote one: its round checks what it left).
func (j *journalWatch) wait() {
	defer j.w.Close()
	limit := time.After(waitLimit)
	for {
		if b, err := os.ReadFile(j.db); err == nil && bytes.Contains(b, []byte(`"staged":`)) {
			return
		}
		select {
		case <-j.w.Events:
		case <-j.w.Errors: // an overflow: read it again
		case <-limit:
			return
		}
	}
}

// childEnv is the environment of a child process of a test: this one's,
// with the race detector's sleep at exit turned off (GORACE
// atexit_sleep_ms, one second by default), so that a child's run time is
// its work: TestApplierCrashKill times its random kills by it, and pays it
// a hundred times.
func childEnv() []string {
	return append(os.Environ(), "GORACE="+strings.TrimSpace(os.Getenv("GORACE")+" atexit_sleep_ms=0"))
}

// TestHelperProcess is the child of TestApplierCrashKill: it applies the
// set-up's plan and exits. It does nothing in a normal test run.
func TestHelperProcess(t *testing.T) {
	dir := os.Getenv(crashEnv)
	if dir == "" {
		return // not a child of TestApplierCrashKill: nothing to do
	}
	b, err := os.ReadFile(filepath.Join(dir, "want.json"))
	if err != nil {
		t.Fatal(err)
	}
	var items []index.Item
	if err := json.Unmarshal(b, &items); err != nil {
		t.Fatal(err)
	}
	want := index.New(len(items))
	for _, it := range items {
		it.Mode &= fs.ModePerm
		want.Set(it)
	}
	a, st, err := openApplier(dir)
	if err != nil {
		t.Fatal(err)
	}
	if os.Getenv(crashSyncfsEnv) != "" {
		a.syncfsMin = 1
	}
	if f := os.NewFile(3, "applying"); f != nil {
		f.Write([]byte{1}) // TestApplierCrashKill times its random kills from here
		f.Close()
	}
	if err := a.Apply(context.Background(), crashGen, crashPlan(t, a.Root, want), IndexLookup(want)); err != nil {
		t.Fatal(err)
	}
	st.Close()
	os.Exit(0)
}
