package syncer

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"pbxsync/hostmon"
	"pbxsync/internal/beneath"
	"pbxsync/internal/index"
	"pbxsync/internal/store"
	"pbxsync/internal/wire"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Journal operation names, as written in the store's intent journal.
const (
	jWrite  = store.OpWrite
	jDelete = store.OpDelete
	jMkdir  = store.OpMkdir
	jRmdir  = store.OpRmdir
	jMeta   = store.OpMeta // files and directories alike
)

// Applier turns plans into files, crash-safely, for one job root. Content
// comes from the store; staging files live in a directory on the job's
// own filesystem so that the final rename is atomic.
type Applier struct {
	Job     string
	Root    string // absolute job root
	Staging string // staging directory on Root's filesystem
	// DataStaging, when set, is the staging directory StagingDir chose
	// from: a rename that fails with EXDEV makes the Applier choose again.
	DataStaging string
	Store       *store.Store
	Log         *slog.Logger
	// Umask, when UmaskKnown, is the process's file mode creation mask
	// (processUmask): a fetched file whose mode it leaves whole is created
	// with that mode in the staging directory (0700, the agent's own), not
	// given it by a chmod after its content (one system call of the ten
	// or so of a small staged file, ~0.4 s of a target's CPU in a
	// 100,000-file initial sync).
	Umask      fs.FileMode
	UmaskKnown bool
	// BeforeJournal, when set, runs once a forward apply's files are
	// staged and durable, just before its journal is written: an error
	// abandons the apply (staged files removed, the tree untouched). A
	// mesh job checks there that no path changed locally meanwhile.
	BeforeJournal func(ops []Op) error
	// guard, when set (a mesh job), holds the stamps of an apply's paths
	// (a forward one, or a rollback's) taken before its last rescan: the
	// apply checks them all once its journal is written, just before its
	// first rename (the journal's write and fsync take long enough under
	// load for a local edit to land in between), and on Linux again at
	// each rename, atomically with it (guardRun). A changed path refuses
	// the apply: the tree is left (or put back) as it was, journal and
	// staged files gone.
	guard *pathGuard
	// afterJournal, when set (tests), runs right after the journal is
	// written: an edit it makes lands where an edit racing the apply does.
	afterJournal func()
	// beforeGuardedRename, when set (tests), runs just before each
	// rename (or removal) of a guarded apply, with the entry's path: an
	// edit it makes lands between the checks and that rename.
	beforeGuardedRename func(path string)
	// Settled, when set, is given the state of each file an apply renamed
	// into place, read back with one lstat (hostmon.Settled): the rescan
	// after the apply then trusts it instead of reading and hashing it.
	Settled func(st hostmon.FileState)

	progress *progressTracker // counts staged files while a target applies
	// syncfsMin overrides syncfsMinFiles when set (tests).
	syncfsMin int
	// syncfs, when set, stands for syncFS (tests: a writeback error).
	syncfs func(dir string) (bool, error)
	// statSpace, when set, stands for statSpace (tests: a file system
	// of a given size).
	statSpace func(dir string) (fsSpace, bool)

	// prestaged holds files staged while their content was fetched
	// (content hash → the id of its staging file, see stagingName, and
	// the mode and mtime it was given; complete and verified); stage
	// takes them instead of reading the content back from the store. An
	// id, not a name: an initial sync of 100k files holds 100k of them.
	prestageMu sync.Mutex
	prestaged  prestagedSet
	// stagingSync writes back what the fetches staged (under prestageMu)
	stagingSync stagingSync
}

// stagedMeta is the mode and mtime a staged file was given with its
// descriptor while it was written (set false: none, it has the mode a
// new staging file gets and the time of its writing).
type stagedMeta struct {
	mtime int64
	mode  fs.FileMode
	set   bool
}

// setStagedMeta gives f, a staging file just written with the content of
// it, its mode and mtime through the descriptor (the apply then sets
// neither by path: two calls per file, each a lookup in a directory of as
// many entries as files fetched). Setuid, setgid and sticky bits wait for
// the apply, which sets them after the owner, as a file the agent
// staged carries no such bit until it is renamed into place.
// created says f was created with that mode (stagingPerm): no chmod then.
func setStagedMeta(f *os.File, it index.Item, created bool) stagedMeta {
	mode := it.Mode & index.ModeBits
	if mode != mode.Perm() {
		return stagedMeta{}
	}
	if !created && f.Chmod(mode) != nil || setFileTimes(f, it.MTime) != nil {
		return stagedMeta{}
	}
	return stagedMeta{mtime: it.MTime, mode: mode, set: true}
}

// stagingPerm returns the permission bits to create the staging file of
// it with: its mode when the item says it (not metaUnknown), it has no
// setuid, setgid or sticky bit (those wait for the apply) and the umask
// leaves it whole (exact, the file then has that mode), else 0600.
func (a *Applier) stagingPerm(it index.Item) (perm fs.FileMode, exact bool) {
	mode := it.Mode & index.ModeBits
	if !a.UmaskKnown || metaUnknown(it) || mode != mode.Perm() || mode&^a.Umask != mode {
		return 0o600, false
	}
	return mode, true
}

// StagingDir picks where a job's staged files go: dataStaging when a file
// renamed from it into root really arrives (so the job tree never holds a
// stray staging file, even after a crash), else a hidden directory inside
// the root that the file filter always excludes. It tries a rename instead
// of comparing device numbers: a bind mount of the same filesystem (as
// systemd's ReadWritePaths makes) has the same device and still refuses
// renames across it with EXDEV. A root that refuses the probe for another
// reason (read-only, no space) gets dataStaging; an apply then fails with
// that reason and the next job start probes again.
func StagingDir(root, dataStaging string) (string, error) {
	derr := os.MkdirAll(dataStaging, 0o700)
	if derr == nil {
		perr := probeRename(dataStaging, root)
		if perr == nil || !errors.Is(perr, syscall.EXDEV) {
			return dataStaging, nil
		}
	}
	inside := filepath.Join(root, ".pbxsync-staging")
	if err := os.Mkdir(inside, 0o700); err != nil && !errors.Is(err, fs.ErrExist) {
		if derr != nil {
			return "", fmt.Errorf("staging dir %s: %w; and %s: %w", dataStaging, derr, inside, err)
		}
		return "", fmt.Errorf("staging dir %s: %w", inside, err)
	}
	// a local user who can write the root must not redirect staged
	// content through a symlink, nor read it in a directory of theirs
	fi, err := os.Lstat(inside)
	if err != nil {
		return "", fmt.Errorf("staging dir %s: %w", inside, err)
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !fi.IsDir() || (ok && int(st.Uid) != os.Geteuid()) {
		return "", fmt.Errorf("staging dir %s is not a directory of this agent's user (a symlink or someone else's); refusing to stage there", inside)
	}
	if fi.Mode().Perm() != 0o700 {
		if err := os.Chmod(inside, 0o700); err != nil {
			return "", fmt.Errorf("staging dir %s: %w", inside, err)
		}
	}
	return inside, nil
}

// probeRename creates a file in from and renames it into dir, then
// removes it.
func probeRename(from, dir string) error {
	f, err := os.CreateTemp(from, stagePrefix+"probe-")
	if err != nil {
		return err
	}
	name := f.Name()
	f.Close()
	dst := filepath.Join(dir, filepath.Base(name))
	if err := os.Rename(name, dst); err != nil {
		os.Remove(name)
		return err
	}
	return os.Remove(dst)
}

// stageParallel bounds the files staged at once.
const stageParallel = 4

// syncParallel bounds the fsyncs of one apply in flight at once: the
// staged files of a batch and the directories its renames touched are made
// durable together (a journalling file system commits concurrent fsyncs as
// one), not one after another.
const syncParallel = 16

// syncfsMinFiles: a batch staging at least this many files is made
// durable with one syncfs(2) of the job root's file system instead of one
// fsync per file. Per-file fsyncs cost about as much as writing the files
// (20,000 files of 1.5 KB on this machine: +2–4 s with 16 in flight,
// against +0.2–0.3 s for one syncfs); syncfs also writes back whatever
// other processes have dirty on that file system, which costs more than
// the fsyncs of a small batch (i13prog: 2,000 files, 0.8–3.6 s against
// 1.7–1.9 s) but little next to a large one: an initial sync, a restore
// of a large tree.
const syncfsMinFiles = 4096

// Apply runs ops as generation gen, towards want (the index the plan was
// made towards: what each op's path must hold; it must have every path of
// a write, mkdir or meta op): it stages and verifies every new file,
// writes the intent journal, performs every operation and fsyncs what it
// touched, then clears the journal. Until the journal is written nothing in
// the tree has changed; after it, Recover finishes the work if we crash.
// When an operation fails the journal stays: the caller restores the tree
// and then calls Resolve. A guarded apply (Applier.guard) puts back what
// it did itself and clears its journal; Resolve is then a no-op.
func (a *Applier) Apply(ctx context.Context, gen uint64, ops []Op, want Lookup) error {
	return a.apply(ctx, gen, ops, want, false)
}

// Restore is Apply for ops that bring back content of an earlier good
// generation (gen names the generation being undone or left): its journal
// is rolled forward at start-up whatever gen's state.
func (a *Applier) Restore(ctx context.Context, gen uint64, ops []Op, want Lookup) error {
	return a.apply(ctx, gen, ops, want, true)
}

func (a *Applier) apply(ctx context.Context, gen uint64, ops []Op, want Lookup, restore bool) error {
	if len(ops) == 0 {
		return nil
	}
	// wanted is the item ops[i] puts at its path (zero for a removal)
	wanted := func(i int) index.Item {
		if k := ops[i].Kind; k == OpDelete || k == OpRmdir {
			return index.Item{}
		}
		it, _ := want(ops[i].Path)
		return it
	}
	for _, op := range ops {
		if k := op.Kind; k != OpDelete && k != OpRmdir {
			if _, ok := want(op.Path); !ok {
				return fmt.Errorf("job %s: the plan's %s of %s has no item in the tree it was made towards", a.Job, k, op.Path)
			}
		}
	}
	// The journal is not held as entries: entry i is made from ops[i] and
	// the id of its staged file when it is written and when it is
	// executed (journalEntry). An initial sync of 100,000 files held
	// 12.8 MB of entries and 9.5 MB of staged names beside its ops.
	staged := make([]uint64, len(ops)) // id of the staged file of ops[i] (stagingName), 0 for none
	var guarded *guardRun
	if a.guard != nil {
		guarded = &guardRun{a: a, g: a.guard, ops: ops}
		for i, op := range ops {
			if op.Kind == OpDelete {
				staged[i] = randomID() // where a guarded delete sets the file aside
			}
		}
	}
	var writes []int
	var writeBytes int64
	for i, op := range ops {
		if op.Kind == OpWrite {
			writes = append(writes, i)
			writeBytes += wanted(i).Size
		}
	}
	// nothing is staged unless all of it fits (see space.go)
	if err := a.roomFor(ops, wanted); err != nil {
		return fmt.Errorf("job %s: %w", a.Job, err)
	}
	a.progress.retotal(wire.PhaseApplying, uint64(len(writes)), uint64(writeBytes))
	cleanup := func() { a.removeStagedIDs(staged) }
	t0 := time.Now()
	owners := a.newOwners()
	// Stage in parallel: each file is read from the store (or taken as it
	// was prestaged while fetched), verified and written; the batch is
	// made durable below.
	err := parallelN(ctx, stageParallel, writes, func(i int) error {
		w := wanted(i)
		id, err := a.stage(ctx, w, ops[i].Have().Kind == index.KindFile, owners)
		staged[i] = id // each worker its own entries
		if err != nil {
			return err
		}
		a.progress.addBytes(w.Size) // the file counts once it is in place (execute)
		return nil
	})
	if err != nil {
		cleanup()
		return err
	}
	// The staged files and their names must be durable before the journal
	// names them: after a power loss, a journal entry whose staged file is
	// gone is taken for a rename that happened, and one whose content is
	// not on disk would be renamed into the tree. The whole batch is made
	// durable at once (see syncParallel).
	tStaged := time.Now()
	synced := false
	syncfsMin := syncfsMinFiles
	if a.syncfsMin > 0 {
		syncfsMin = a.syncfsMin
	}
	if len(writes) >= syncfsMin {
		var err error
		if synced, err = a.syncFS(a.Staging); err != nil {
			cleanup()
			return fmt.Errorf("job %s: sync the staged files: %w", a.Job, err)
		}
	}
	if !synced && len(writes) > 0 {
		names := make([]string, len(writes))
		for k, i := range writes {
			names[k] = a.stagingName(staged[i])
		}
		if err := parallel(ctx, names, syncFile); err != nil {
			cleanup()
			return fmt.Errorf("job %s: fsync staged file: %w", a.Job, err)
		}
		if err := syncDir(a.Staging); err != nil {
			cleanup()
			return fmt.Errorf("job %s: fsync staging dir: %w", a.Job, err)
		}
	}
	// after this apply's own sync, so that an error a background sync
	// saw at any point before the journal is written fails the apply
	if len(writes) > 0 {
		if err := a.waitStagingSync(); err != nil {
			cleanup()
			return fmt.Errorf("job %s: sync the staged files: %w", a.Job, err)
		}
	}
	if a.BeforeJournal != nil && !restore {
		if err := a.BeforeJournal(ops); err != nil {
			cleanup()
			return err
		}
	}
	tSynced := time.Now()
	entry := func(i int) store.JournalEntry { return a.journalEntry(ops[i], wanted(i), staged[i]) }
	j := &store.Journal{Job: a.Job, Generation: gen, Restore: restore, Exchange: guarded != nil}
	if err := a.Store.WriteJournalFunc(a.Job, j, len(ops), entry); err != nil {
		cleanup()
		return fmt.Errorf("job %s: write journal: %w", a.Job, err)
	}
	tJournal := time.Now()
	if a.afterJournal != nil {
		a.afterJournal()
	}
	if guarded != nil {
		if err := a.guard.check(); err != nil {
			// nothing is renamed yet: the apply never happened
			if cerr := a.Store.ClearJournal(a.Job); cerr != nil {
				return errors.Join(err, fmt.Errorf("job %s: clear journal: %w", a.Job, cerr)) // the caller's Resolve removes it
			}
			cleanup()
			return err
		}
		a.Log.Debug("no local change since the rescan; renaming", "job", a.Job, "generation", gen, "ops", len(ops))
	}
	var settle func(i int) index.Item
	if a.Settled != nil {
		settle = wanted
	}
	if err := a.execute(len(ops), entry, j.Exchange, settle, guarded); err != nil {
		if guarded != nil {
			// a refusal, or any failure midway: what was renamed is put
			// back, and the apply never happened
			if uerr := guarded.undo(entry); uerr != nil {
				return errors.Join(err, uerr) // the journal stays until the caller's Resolve
			}
			if cerr := a.Store.ClearJournal(a.Job); cerr != nil {
				return errors.Join(err, fmt.Errorf("job %s: clear journal: %w", a.Job, cerr))
			}
			cleanup()
		}
		if errors.Is(err, syscall.EXDEV) && a.DataStaging != "" {
			// the root became another mount since the job chose its staging
			if s, serr := StagingDir(a.Root, a.DataStaging); serr == nil && s != a.Staging {
				a.Log.Warn("renames from the staging directory fail across devices; staging elsewhere from now on", "job", a.Job, "was", a.Staging, "now", s)
				cleanup()         // while a.Staging still names their directory
				a.dropPrestaged() // their names are of the old directory
				a.Staging = s
			}
		}
		return err // unless guarded, the journal stays until the caller has restored the tree and calls Resolve
	}
	tExecuted := time.Now()
	if guarded != nil {
		guarded.finish()
	}
	if err := a.Store.ClearJournal(a.Job); err != nil {
		return fmt.Errorf("job %s: clear journal: %w", a.Job, err)
	}
	if took := time.Since(t0); took > progressAfter {
		a.Log.Info("apply steps", "job", a.Job, "generation", gen, "ops", len(ops), "files", len(writes), "took", took.Round(time.Millisecond),
			"stage", tStaged.Sub(t0).Round(time.Millisecond), "sync", tSynced.Sub(tStaged).Round(time.Millisecond),
			"journal", tJournal.Sub(tSynced).Round(time.Millisecond), "execute", tExecuted.Sub(tJournal).Round(time.Millisecond),
			"clear", time.Since(tExecuted).Round(time.Millisecond))
	}
	return nil
}

// journalEntry is the journal's entry of op, which puts w at its path
// and whose staged file (a write's, or where a guarded delete sets its
// file aside) has the id staged.
func (a *Applier) journalEntry(op Op, w index.Item, staged uint64) store.JournalEntry {
	e := store.JournalEntry{Path: op.Path, Hash: w.Hash, OldHash: op.Have().Hash, Mode: index.UnixMode(w.Mode), MTime: w.MTime}
	switch op.Kind {
	case OpWrite:
		e.Op = jWrite
		e.Staged = a.stagingName(staged)
	case OpDelete:
		e.Op = jDelete
		if staged != 0 {
			e.Staged = a.stagingName(staged) // where a guarded delete sets the file aside
		}
	case OpRmdir:
		e.Op = jRmdir
	case OpMkdir:
		e.Op = jMkdir
	case OpMeta, OpDirMeta:
		e.Op = jMeta
	}
	return e
}

// removeStaged removes j's staged files that were not renamed.
func (a *Applier) removeStaged(j *store.Journal) {
	for _, e := range j.Entries {
		if e.Staged != "" {
			os.Remove(e.Staged)
		}
	}
}

// removeStagedIDs removes the staged files of ids (0: none) that were not
// renamed.
func (a *Applier) removeStagedIDs(ids []uint64) {
	for _, id := range ids {
		if id != 0 {
			os.Remove(a.stagingName(id))
		}
	}
}

// Resolve ends a failed apply once the caller has restored the tree (or
// given up on it): it removes the journal and every staged file of the
// job. Nothing of a failed apply outlives it.
func (a *Applier) Resolve() error {
	j, ok, err := a.Store.ReadJournal(a.Job)
	if err == nil && ok {
		a.removeStaged(j)
	}
	a.cleanStaging()
	if err := a.Store.ClearJournal(a.Job); err != nil {
		return fmt.Errorf("job %s: clear journal: %w", a.Job, err)
	}
	return nil
}

// stagingDirs are the directories the job may have staged in: the one in
// use and the other StagingDir could have chosen at an earlier start.
func (a *Applier) stagingDirs() []string {
	dirs := []string{a.Staging}
	for _, d := range []string{a.DataStaging, filepath.Join(a.Root, ".pbxsync-staging")} {
		if d != "" && !slices.Contains(dirs, d) {
			dirs = append(dirs, d)
		}
	}
	return dirs
}

// cleanStaging removes the job's staging files (and only its own: two
// jobs on one tree share a staging directory inside it) from every
// directory it may have staged in.
func (a *Applier) cleanStaging() {
	for _, dir := range a.stagingDirs() {
		ents, err := os.ReadDir(dir)
		if err != nil {
			continue
		}
		for _, e := range ents {
			if a.ownStaged(e.Name()) {
				os.Remove(filepath.Join(dir, e.Name()))
			}
		}
	}
}

// ownStaged reports whether name is a staging file of this job: the stage
// prefix, the job name and 16 hex digits (so that job "a" does not take
// the files of job "a-b"), or a probe file.
func (a *Applier) ownStaged(name string) bool {
	if strings.HasPrefix(name, stagePrefix+"probe-") {
		return true
	}
	rest, ok := strings.CutPrefix(name, stagePrefix+a.Job+"-")
	if !ok || len(rest) != 16 {
		return false
	}
	_, err := hex.DecodeString(rest)
	return err == nil
}

// Recover finishes a journal left by a crash (rolling it forward) and
// removes stray staging files. It returns the generation of the journal it
// finished, or 0. A journal of a generation that is already bad or rolled
// back is never rolled forward: it is dropped, and the caller restores its
// newest good generation. A journal that cannot be finished (the fault
// that stopped the apply is still there) is dropped too and its
// generation marked bad, so that the job starts and retries: a job that
// fails forever at start-up helps no one.
func (a *Applier) Recover(ctx context.Context) (uint64, error) {
	j, ok, err := a.Store.ReadJournal(a.Job)
	if err != nil {
		if !errors.Is(err, store.ErrCorrupt) {
			return 0, fmt.Errorf("job %s: read journal: %w", a.Job, err)
		}
		// A torn journal was never complete, so nothing was renamed yet.
		a.Log.Warn("discarding a torn intent journal; no file had been touched", "job", a.Job, "err", err)
		ok = false
	}
	var gen uint64
	if ok {
		for _, e := range j.Entries {
			if e.Staged != "" && !slices.Contains(a.stagingDirs(), filepath.Dir(e.Staged)) {
				return 0, fmt.Errorf("job %s: journal names staged file %s outside %s; refusing it", a.Job, e.Staged, strings.Join(a.stagingDirs(), " and "))
			}
		}
		state := a.generationState(j.Generation)
		switch {
		case !j.Restore && (state == store.StateBad || state == store.StateRolledBack):
			a.Log.Warn("dropping the journal of an interrupted apply: its generation is marked "+string(state)+"; the newest good generation is restored instead", "job", a.Job, "generation", j.Generation)
			a.removeStaged(j)
		default:
			a.Log.Info("rolling forward an interrupted apply", "job", a.Job, "generation", j.Generation, "entries", len(j.Entries), "restore", j.Restore)
			if err := a.execute(len(j.Entries), func(i int) store.JournalEntry { return j.Entries[i] }, j.Exchange, nil, nil); err != nil {
				a.Log.Error("cannot finish an interrupted apply; dropping its journal", "job", a.Job, "generation", j.Generation, "err", err)
				a.removeStaged(j)
				if !j.Restore && state == store.StateApplying {
					if serr := a.Store.SetState(a.Job, j.Generation, store.StateBad, "interrupted apply could not be finished: "+err.Error()); serr != nil {
						a.Log.Warn("cannot mark generation bad", "job", a.Job, "generation", j.Generation, "err", serr)
					}
				}
			} else if !j.Restore {
				gen = j.Generation
			}
		}
	}
	if err := a.Store.ClearJournal(a.Job); err != nil {
		return 0, fmt.Errorf("job %s: clear journal: %w", a.Job, err)
	}
	if _, err := os.Stat(a.Staging); err != nil {
		return gen, fmt.Errorf("job %s: staging dir: %w", a.Job, err)
	}
	a.cleanStaging()
	return gen, nil
}

// generationState is the state of generation n of the job, or "" when the
// store does not know it.
func (a *Applier) generationState(n uint64) store.State {
	gens, err := a.Store.Generations(a.Job)
	if err != nil {
		return ""
	}
	for _, g := range gens {
		if g.Number == n {
			return g.State
		}
	}
	return ""
}

const stagePrefix = ".pbxsync-stage-"

// newStagingFile creates a new, empty staging file of the job.
func (a *Applier) newStagingFile(perm fs.FileMode) (*os.File, string, error) {
	f, _, name, err := a.createStaging(perm)
	return f, name, err
}

// createStaging creates a new, empty staging file of the job with perm
// (less the umask) and returns it with its id (never 0) and its name
// (stagingName).
func (a *Applier) createStaging(perm fs.FileMode) (*os.File, uint64, string, error) {
	id := randomID()
	name := a.stagingName(id)
	f, err := createExcl(name, uint32(perm))
	return f, id, name, err
}

// randomID returns the id of a new staging name, never 0 (no staged file).
func randomID() uint64 {
	for {
		var rnd [8]byte
		rand.Read(rnd[:])
		if id := binary.BigEndian.Uint64(rnd[:]); id != 0 {
			return id
		}
	}
}

// stagingName is the name of the staging file of the job with id, in the
// staging directory. An apply makes it again each time it needs it (see
// journalEntry): one allocation, no formatting.
func (a *Applier) stagingName(id uint64) string {
	dir := a.Staging
	if dir == "" || filepath.Clean(dir) != dir {
		return filepath.Join(dir, fmt.Sprintf("%s%s-%016x", stagePrefix, a.Job, id))
	}
	var b strings.Builder
	b.Grow(len(dir) + 1 + len(stagePrefix) + len(a.Job) + 1 + 16)
	b.WriteString(dir)
	if !os.IsPathSeparator(dir[len(dir)-1]) {
		b.WriteByte(filepath.Separator)
	}
	b.WriteString(stagePrefix)
	b.WriteString(a.Job)
	b.WriteByte('-')
	for i := range 16 {
		b.WriteByte("0123456789abcdef"[id>>(60-4*i)&0xf])
	}
	return b.String()
}

// stagingID is the id of name, a stagingName in the staging directory.
func (a *Applier) stagingID(name string) (uint64, bool) {
	rest, ok := strings.CutPrefix(name, filepath.Join(a.Staging, stagePrefix+a.Job+"-"))
	if !ok || len(rest) != 16 {
		return 0, false
	}
	id, err := strconv.ParseUint(rest, 16, 64)
	return id, err == nil
}

// prestage records name, a staging file holding exactly content h (the
// caller verified it) with metadata m, for stage to take. A name that is
// no staging file of the job's staging directory (it changed meanwhile)
// is removed.
func (a *Applier) prestage(h index.Hash, name string, m stagedMeta) {
	a.prestageMu.Lock()
	defer a.prestageMu.Unlock()
	if id, ok := a.stagingID(name); !ok || !a.prestaged.add(h, id, m) {
		os.Remove(name) // not a staging name of the job, or h is there
	}
}

// takePrestaged returns the id of a staging file prestaged with content
// h and the metadata it was given, and forgets it.
func (a *Applier) takePrestaged(h index.Hash) (uint64, stagedMeta, bool) {
	a.prestageMu.Lock()
	defer a.prestageMu.Unlock()
	// the last one taken empties the set (~6.6 MB after an initial sync
	// of 100k files), which the rest of the apply (sync, journal,
	// execute) does not need
	return a.prestaged.take(h)
}

// dropPrestaged removes the prestaged files no apply took (a failed or
// smaller apply, or before the staging directory changes).
func (a *Applier) dropPrestaged() {
	a.prestageMu.Lock()
	defer a.prestageMu.Unlock()
	a.prestaged.each(func(id uint64) { os.Remove(a.stagingName(id)) })
	a.prestaged = prestagedSet{}
}

// stage copies the content of it from the store into a new staging file,
// verifies it and applies owner, mode and mtime (or takes the file
// prestaged with that content while it was fetched), and returns the id
// of the staging file (stagingName). exists says the plan replaces a file
// at it.Path, whose owner the staged file keeps. The caller fsyncs the
// batch.
func (a *Applier) stage(ctx context.Context, it index.Item, exists bool, o *owners) (uint64, error) {
	if id, m, ok := a.takePrestaged(it.Hash); ok {
		if err := a.finishStaged(a.stagingName(id), m, it, exists, o); err != nil {
			return 0, err
		}
		return id, nil
	}
	perm, exact := a.stagingPerm(it)
	f, id, name, err := a.createStaging(perm)
	if err != nil {
		return 0, fmt.Errorf("job %s: stage %s: %w", a.Job, it.Path, err)
	}
	fail := func(err error) (uint64, error) {
		f.Close()
		os.Remove(name)
		return 0, fmt.Errorf("job %s: stage %s: %w", a.Job, it.Path, err)
	}
	// the store verifies the content: a copy that reaches the end fails
	// (store.ErrCorrupt) unless it hashes to it.Hash
	n, err := a.Store.CopyTo(ctx, it.Hash, f)
	if err != nil {
		return fail(err)
	}
	if n != it.Size {
		return fail(fmt.Errorf("content verification failed: have %d bytes, want %s (%d bytes)", n, it.Hash.Short(), it.Size))
	}
	// chown first: it clears setuid and setgid, which chmod then sets
	if uid, gid, ok := a.ownerFor(it.Path, exists, o); ok && !o.isStaged(uid, gid) {
		if err := f.Chown(uid, gid); err != nil {
			return fail(err)
		}
	}
	// a chown clears only setuid and setgid, which an exact perm lacks
	if !exact {
		if err := f.Chmod(it.Mode & index.ModeBits); err != nil {
			return fail(err)
		}
	}
	if err := f.Close(); err != nil {
		return fail(err)
	}
	mt := time.Unix(0, it.MTime)
	if err := os.Chtimes(name, mt, mt); err != nil {
		os.Remove(name)
		return 0, fmt.Errorf("job %s: stage %s: %w", a.Job, it.Path, err)
	}
	return id, nil
}

// finishStaged gives a prestaged file the owner, mode and mtime of it:
// those of the fetch (m) that differ.
func (a *Applier) finishStaged(name string, m stagedMeta, it index.Item, exists bool, o *owners) error {
	fail := func(err error) error {
		os.Remove(name)
		return fmt.Errorf("job %s: stage %s: %w", a.Job, it.Path, err)
	}
	// the staging directory is the agent's own (0700): no one swaps the
	// file for a link between these calls
	mode := it.Mode & index.ModeBits
	chmod := !m.set || m.mode != mode
	if uid, gid, ok := a.ownerFor(it.Path, exists, o); ok && !o.isStaged(uid, gid) {
		if err := os.Lchown(name, uid, gid); err != nil {
			return fail(err)
		}
		chmod = true // a chown may clear setuid and setgid: chmod after it
	}
	if chmod {
		if err := os.Chmod(name, mode); err != nil {
			return fail(err)
		}
	}
	if !m.set || m.mtime != it.MTime {
		mt := time.Unix(0, it.MTime)
		if err := os.Chtimes(name, mt, mt); err != nil {
			return fail(err)
		}
	}
	return nil
}

// execute performs the journal's n entries, entry i made by at(i) (an
// apply's from its ops, Recover's those read back). Every step is
// idempotent, so a journal can be executed again after a crash at any
// point. Every path is
// reached through its parent directory opened below the root without
// following a symlink (package beneath), and no step follows a symlink at
// the last element either: a local user who swaps a directory for a link
// mid-apply gets a refused apply, never a write outside the root. The
// entries are in path order, so the files of one directory follow each
// other and share its descriptor. want, when set, returns the item of
// entry i: each file renamed into place is read back for Applier.Settled.
// The directories the entries touched are fsynced in parallel: on a
// journalling file system the first commits every rename (a syncfs would
// also write back whatever else is dirty there). g, when set, carries out
// the writes and deletes of a guarded apply (guardRun) and records what
// was done for its undo. A journal of swapping writes (exchange) rolled
// forward without g is checked against each entry's OldHash
// (recoverWrite, recoverDelete).
func (a *Applier) execute(n int, at func(i int) store.JournalEntry, exchange bool, want func(i int) index.Item, g *guardRun) error {
	dirs := map[string]bool{}
	var settled *settler
	if want != nil {
		settled = a.startSettler()
	}
	parent := parentDir{release: settled.release}
	defer func() {
		parent.close()
		settled.wait() // the read-backs and the directories handed over
	}()
	var o *owners
	for i := range n {
		e := at(i)
		if err := index.ValidatePath(e.Path); err != nil {
			return fmt.Errorf("job %s: journal: %w", a.Job, err)
		}
		dir, base, err := parent.open(a.Root, e.Path)
		if err != nil {
			if (e.Op == jDelete || e.Op == jRmdir) && errors.Is(err, fs.ErrNotExist) {
				continue // its directory is gone, and it with it
			}
		} else {
			if e.Op == jMkdir && o == nil {
				o = a.newOwners()
			}
			switch {
			case g != nil && e.Op == jWrite:
				dirs[index.Parent(e.Path)] = true
				err = g.write(i, e, dir, base)
			case g != nil && e.Op == jDelete:
				dirs[index.Parent(e.Path)] = true
				err = g.remove(i, e, dir, base)
			case g == nil && exchange && e.Op == jWrite:
				dirs[index.Parent(e.Path)] = true
				err = a.recoverWrite(e, dir, base)
			case g == nil && exchange && e.Op == jDelete:
				dirs[index.Parent(e.Path)] = true
				err = a.recoverDelete(e, dir, base)
			default:
				err = a.executeOne(e, dir, base, dirs, o)
				if err == nil && g != nil {
					g.did(i, e)
				}
			}
		}
		if e.Op == jMkdir || e.Op == jRmdir {
			parent.forget(e.Path) // a directory there is made or gone
		}
		if err != nil {
			if errors.Is(err, beneath.ErrSymlink) {
				return fmt.Errorf("job %s: refusing %s %s: a symlink on its way could lead outside the job root: %w", a.Job, e.Op, e.Path, err)
			}
			return fmt.Errorf("job %s: %s %s: %w", a.Job, e.Op, e.Path, err)
		}
		if e.Op == jWrite {
			a.progress.addFile()
			if settled != nil {
				settled.settle(want(i), dir, base)
			}
		}
	}
	parent.close()
	paths := make([]string, 0, len(dirs))
	for d := range dirs {
		paths = append(paths, d)
	}
	sort.Strings(paths)
	return parallel(context.Background(), paths, func(d string) error {
		f, err := beneath.OpenDir(a.Root, d)
		if errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR) {
			// removed, or a file now (a directory that became a file in
			// this generation): its parent's fsync makes that durable
			return nil
		}
		if err == nil {
			err = f.Sync()
			f.Close()
		}
		if err != nil {
			return fmt.Errorf("job %s: fsync %s: %w", a.Job, filepath.Join(a.Root, d), err)
		}
		return nil
	})
}

// settle reads back the file it just renamed into dir/base and hands its
// state to Applier.Settled when it shows it (hostmon.Settled); a file
// that does not is left to the rescan.
func (a *Applier) settle(it index.Item, dir *os.File, base string) {
	fi, err := hostmon.LstatAt(dir, base)
	if err != nil {
		return
	}
	if st, ok := hostmon.Settled(it, fi); ok {
		a.Settled(st)
	}
}

// parentDir is the parent directory execute opened last (see
// beneath.Parent), kept for the next entry in the same directory.
type parentDir struct {
	rel string // relative to the root
	f   *os.File
	// release closes a directory let go of (nil: Close); the settler
	// closes it once it read back what was renamed into it
	release func(*os.File)
}

// open returns the parent directory of rel and rel's last element.
func (p *parentDir) open(root, rel string) (*os.File, string, error) {
	dir, base := index.Parent(rel), rel[strings.LastIndexByte(rel, '/')+1:]
	if p.f != nil && p.rel == dir {
		return p.f, base, nil
	}
	p.close()
	f, base, err := beneath.Parent(root, rel)
	if err != nil {
		return nil, "", err
	}
	p.rel, p.f = dir, f
	return f, base, nil
}

// forget closes the kept directory when it is rel or below it.
func (p *parentDir) forget(rel string) {
	if p.f != nil && (p.rel == rel || strings.HasPrefix(p.rel, rel+"/")) {
		p.close()
	}
}

func (p *parentDir) close() {
	if p.f == nil {
		return
	}
	if p.release != nil {
		p.release(p.f)
	} else {
		p.f.Close()
	}
	p.f = nil
}

// parallel runs f on every item, syncParallel at a time, and returns the
// first error (the rest still run: each is an fsync that costs nothing to
// finish). A done ctx stops handing out items.
func parallel[T any](ctx context.Context, items []T, f func(T) error) error {
	return parallelN(ctx, syncParallel, items, f)
}

// parallelN is parallel with n workers.
func parallelN[T any](ctx context.Context, n int, items []T, f func(T) error) error {
	if len(items) == 1 {
		return f(items[0])
	}
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		first error
		next  = make(chan T)
	)
	for w := 0; w < min(n, len(items)); w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for it := range next {
				if err := f(it); err != nil {
					mu.Lock()
					if first == nil {
						first = err
					}
					mu.Unlock()
				}
			}
		}()
	}
	for _, it := range items {
		mu.Lock()
		failed := first != nil
		mu.Unlock()
		if failed || ctx.Err() != nil {
			break // no new work after the first failure
		}
		next <- it
	}
	close(next)
	wg.Wait()
	if first == nil {
		first = ctx.Err()
	}
	return first
}

// syncFile fsyncs the file at name (content and inode: mode, mtime).
func syncFile(name string) error {
	f, err := os.Open(name)
	if err != nil {
		return err
	}
	defer f.Close()
	return f.Sync()
}

// executeOne performs one journal entry in dir, the parent directory of
// its path, where its last element is base; dirs collects the directories
// (relative to the root) to fsync afterwards.
func (a *Applier) executeOne(e store.JournalEntry, dir *os.File, base string, dirs map[string]bool, o *owners) error {
	parent := index.Parent(e.Path)
	var err error
	switch e.Op {
	case jWrite:
		dirs[parent] = true
		err = beneath.Rename(e.Staged, dir, base)
		if errors.Is(err, fs.ErrNotExist) {
			if _, serr := os.Stat(e.Staged); errors.Is(serr, fs.ErrNotExist) {
				err = nil // renamed before the crash
			}
		}
		return err
	case jDelete:
		dirs[parent] = true
		if err := beneath.Remove(dir, base); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
		return nil
	case jRmdir:
		dirs[parent] = true
		err = beneath.Rmdir(dir, base)
		switch {
		case err == nil || errors.Is(err, fs.ErrNotExist):
			return nil
		case errors.Is(err, syscall.ENOTEMPTY) || errors.Is(err, syscall.EEXIST):
			a.Log.Warn("directory removed at the source still holds files that are not synced here; leaving it", "job", a.Job, "path", e.Path)
			return nil
		case errors.Is(err, syscall.ENOTDIR):
			// a local symlink (or file) where the directory was: not ours
			a.Log.Warn("directory removed at the source is not a directory here; leaving it", "job", a.Job, "path", e.Path)
			return nil
		}
		return err
	case jMkdir:
		dirs[parent] = true
		perm := uint32(index.FileMode(e.Mode).Perm() | 0o700)
		err = beneath.Mkdir(dir, base, perm)
		if errors.Is(err, fs.ErrExist) {
			m, serr := beneath.Lstat(dir, base)
			switch {
			case serr != nil:
				return serr
			case m.IsDir():
				return nil
			case m&fs.ModeSymlink != 0:
				// a local symlink where the source has a directory: the
				// link itself is replaced (never followed), as rsync does
				// without --keep-dirlinks; the job kept its target in the
				// store before the apply
				a.Log.Warn("replacing a local symlink by the directory the source has", "job", a.Job, "path", e.Path)
				if err := beneath.Remove(dir, base); err != nil {
					return err
				}
				err = beneath.Mkdir(dir, base, perm)
			}
		}
		if err != nil {
			return err
		}
		if uid, gid, ok := a.ownerFor(parent, true, o); ok {
			return beneath.Lchown(dir, base, uid, gid)
		}
		return nil
	case jMeta:
		if err := beneath.Chmod(dir, base, e.Mode); err != nil {
			return err
		}
		return beneath.Chtimes(dir, base, e.MTime)
	}
	return fmt.Errorf("unknown journal operation %q", e.Op)
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// owners is what one apply learnt of owners, when the agent runs as root
// (see ownerFor): the owner of each directory it looked up, and the owner
// its new staging files have, which needs no chown.
type owners struct {
	root   bool
	staged owner
	mu     sync.Mutex
	dirs   map[string]owner // relative path → owner (ok false: not there)
}

type owner struct {
	uid, gid int
	ok       bool
}

// newOwners returns the owners of an apply: empty unless the agent runs as
// root, who can give files away.
func (a *Applier) newOwners() *owners {
	if os.Geteuid() != 0 {
		return &owners{}
	}
	o := &owners{root: true, staged: owner{os.Geteuid(), os.Getegid(), true}, dirs: map[string]owner{}}
	// a new file in a setgid directory takes the directory's group
	if fi, err := os.Stat(a.Staging); err == nil && fi.Mode()&fs.ModeSetgid != 0 {
		if st, ok := fi.Sys().(*syscall.Stat_t); ok {
			o.staged.gid = int(st.Gid)
		}
	}
	return o
}

// isStaged reports whether uid and gid are what a new staging file has.
func (o *owners) isStaged(uid, gid int) bool {
	return o.staged.ok && o.staged.uid == uid && o.staged.gid == gid
}

// ownerFor returns the owner a written item at rel gets when the agent runs
// as root: the owner of the file it replaces (exists: the plan saw one),
// else of its nearest existing parent directory, looked up once per apply.
// A rename gives the path a new inode, and without this every synced file
// would become root's (and a 0640 asterisk.conf unreadable to Asterisk).
// Other users cannot give files away; ok is false for them.
func (a *Applier) ownerFor(rel string, exists bool, o *owners) (uid, gid int, ok bool) {
	if !o.root {
		return 0, 0, false
	}
	if exists {
		if w := a.lstatOwner(rel); w.ok {
			return w.uid, w.gid, true
		}
	}
	for d := index.Parent(rel); ; d = index.Parent(d) {
		o.mu.Lock()
		w, known := o.dirs[d]
		o.mu.Unlock()
		if !known {
			w = a.lstatOwner(d)
			o.mu.Lock()
			o.dirs[d] = w
			o.mu.Unlock()
		}
		if w.ok {
			return w.uid, w.gid, true
		}
		if d == "" {
			return 0, 0, false
		}
	}
}

// lstatOwner returns the owner of rel ("" is the root), ok false when
// there is nothing there.
func (a *Applier) lstatOwner(rel string) owner {
	st, err := os.Lstat(filepath.Join(a.Root, filepath.FromSlash(rel)))
	if err != nil {
		return owner{}
	}
	if sys, isUnix := st.Sys().(*syscall.Stat_t); isUnix {
		return owner{int(sys.Uid), int(sys.Gid), true}
	}
	return owner{}
}
