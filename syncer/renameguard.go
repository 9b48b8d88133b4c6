package syncer

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"syscall"

	"pbxsync/hostmon"
	"pbxsync/internal/beneath"
	"pbxsync/internal/index"
	"pbxsync/internal/store"
)

// guardRun carries out the writes and deletes of one guarded apply (a
// mesh apply: Applier.guard), each checked at the rename itself, so that
// a local write that lands after the apply's last rescan is never
// replaced or removed, whenever it lands:
//
//   - a file written where the stamp saw none is renamed into place with
//     renameat2(RENAME_NOREPLACE): a file created here meanwhile makes it
//     fail (EEXIST), and the apply is refused;
//   - a file written over one is swapped with it in one step
//     (RENAME_EXCHANGE); what came out, now at the staged name, must be
//     the stamped file (inode, size, mtime, mode), else it is swapped back
//     and the apply refused. An editor that writes a temporary file and
//     renames it over (vi, most tools, our own applies) puts another inode
//     there: caught. A write in place through a descriptor opened before
//     is caught when it lands before the swap (its size or mtime); one
//     that lands after it writes into the displaced file, which the apply
//     then removes: no rename can see that, and no rename-based apply can
//     keep it;
//   - a file deleted is first moved aside to a staging name, checked
//     there the same way, and put back (RENAME_NOREPLACE) when it is not
//     the stamped one.
//
// What the renames displace stays at their staging names until every
// rename went through, so that a refusal midway can undo what was done
// (undo: the tree is all-old again) and is then removed (finish). The
// journal says so (store.Journal.Exchange), and names the staging name
// each delete sets its file aside at: Recover tells from the staged files
// how far each entry got, and checks what it still renames against the
// entry's OldHash (recoverWrite, recoverDelete).
//
// Where renameat2 has no such flags (another OS, a file system without
// them) the writes fall back to plain renames, checked only by
// pathGuard.check before the first of them.
type guardRun struct {
	a     *Applier
	g     *pathGuard
	ops   []Op // the apply's ops, by journal entry (what a rmdir removed)
	steps []guardStep
	plain bool // renameat2 is not there: plain renames
}

// stepKind is what a guarded apply did to one path.
type stepKind uint8

const (
	stepCreated   stepKind = iota // a new file where there was none
	stepExchanged                 // swapped with the file there; name holds that file
	stepSetAside                  // a deleted file moved to name
	stepMkdir                     // a directory created
	stepRmdir                     // a directory removed
	stepMeta                      // a file's or directory's mode and mtime set
)

// guardStep is one change of a guarded apply, to undo on a refusal.
type guardStep struct {
	i    int // journal entry
	kind stepKind
	name string // the staging name: the staged file, or what was displaced
	// dev and ino are the staged file's, put at the path (created,
	// exchanged): its undo takes back only that file
	dev, ino uint64
}

// localChangeAtRename is the refusal of an apply over a local change at
// p found at p's rename.
func localChangeAtRename(p string) error {
	return fmt.Errorf("%s %w (found at its rename)", p, errLocalChange)
}

// fileID returns the device and inode of the file at name.
func fileID(name string) (dev, ino uint64, err error) {
	fi, err := os.Lstat(name)
	if err != nil {
		return 0, 0, err
	}
	dev, ino, _ = hostmon.Identity(fi)
	return dev, ino, nil
}

// write renames entry i's staged file to dir/base, checked against the
// path's stamp (see guardRun).
func (r *guardRun) write(i int, e store.JournalEntry, dir *os.File, base string) error {
	if r.a.beforeGuardedRename != nil {
		r.a.beforeGuardedRename(e.Path)
	}
	was, stamped := r.g.stamps[e.Path]
	if r.plain || !stamped {
		return r.a.executeOne(e, dir, base, map[string]bool{}, nil)
	}
	dev, ino, err := fileID(e.Staged)
	if err != nil {
		return err
	}
	if !was.exists || was.mode.IsDir() {
		// nothing there (a directory there was removed by an earlier entry)
		err := beneath.RenameNoReplace(e.Staged, dir, base)
		switch {
		case errors.Is(err, errors.ErrUnsupported):
			return r.fallBack(e, dir, base, err)
		case errors.Is(err, fs.ErrExist):
			return localChangeAtRename(e.Path)
		case err != nil:
			return err
		}
		r.steps = append(r.steps, guardStep{i: i, kind: stepCreated, name: e.Staged, dev: dev, ino: ino})
		return nil
	}
	err = beneath.Exchange(e.Staged, dir, base)
	switch {
	case errors.Is(err, errors.ErrUnsupported):
		return r.fallBack(e, dir, base, err)
	case errors.Is(err, fs.ErrNotExist):
		return localChangeAtRename(e.Path) // removed here
	case err != nil:
		return err
	}
	ok, err := r.g.holds(e.Path, e.Staged)
	if !ok || err != nil {
		if xerr := beneath.Exchange(e.Staged, dir, base); xerr != nil {
			// the member's version stays; what was there is kept aside
			return errors.Join(localChangeAtRename(e.Path), err, fmt.Errorf("swap back: %w; the local file is kept as %s", xerr, r.a.keep(e.Staged)))
		}
		if err != nil {
			return fmt.Errorf("check %s after the rename: %w", e.Path, err)
		}
		return localChangeAtRename(e.Path)
	}
	r.steps = append(r.steps, guardStep{i: i, kind: stepExchanged, name: e.Staged, dev: dev, ino: ino})
	return nil
}

// remove deletes dir/base for entry i: moved aside, checked against the
// path's stamp, put back when it is not the stamped file.
func (r *guardRun) remove(i int, e store.JournalEntry, dir *os.File, base string) error {
	if r.a.beforeGuardedRename != nil {
		r.a.beforeGuardedRename(e.Path)
	}
	if _, stamped := r.g.stamps[e.Path]; r.plain || !stamped {
		return r.a.executeOne(e, dir, base, map[string]bool{}, nil)
	}
	aside := e.Staged // named in the journal: Recover finds it (recoverDelete)
	err := beneath.MoveOut(dir, base, aside)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return nil // removed here too
	case errors.Is(err, errors.ErrUnsupported):
		return r.fallBack(e, dir, base, err)
	case err != nil:
		return err
	}
	ok, err := r.g.holds(e.Path, aside)
	if !ok || err != nil {
		if perr := beneath.RenameNoReplace(aside, dir, base); perr != nil {
			return errors.Join(localChangeAtRename(e.Path), err, fmt.Errorf("put back: %w; the local file is kept as %s", perr, r.a.keep(aside)))
		}
		if err != nil {
			return fmt.Errorf("check %s after moving it aside: %w", e.Path, err)
		}
		return localChangeAtRename(e.Path)
	}
	r.steps = append(r.steps, guardStep{i: i, kind: stepSetAside, name: aside})
	return nil
}

// fallBack makes the rest of the apply plain renames (renameat2 without
// its flags here) and does entry e so.
func (r *guardRun) fallBack(e store.JournalEntry, dir *os.File, base string, why error) error {
	r.a.Log.Warn("renames here cannot check the file they replace; the mesh apply's paths are checked only before its first rename", "job", r.a.Job, "root", r.a.Root, "err", why)
	r.plain = true
	return r.a.executeOne(e, dir, base, map[string]bool{}, nil)
}

// did records what entry i, neither a write nor a delete, changed, for
// undo.
func (r *guardRun) did(i int, e store.JournalEntry) {
	switch e.Op {
	case jMeta:
		if r.ops[i].Have().Kind != 0 {
			r.steps = append(r.steps, guardStep{i: i, kind: stepMeta})
		}
	case jMkdir:
		if was, ok := r.g.stamps[e.Path]; ok && !was.exists {
			r.steps = append(r.steps, guardStep{i: i, kind: stepMkdir})
		}
	case jRmdir:
		r.steps = append(r.steps, guardStep{i: i, kind: stepRmdir})
	}
}

// undo takes back every step done, newest first: the tree holds what it
// held before the apply (with any local change since). A step it cannot
// undo is logged and returned; a displaced file it cannot put back is kept
// under another name in the staging directory (keep).
func (r *guardRun) undo(at func(i int) store.JournalEntry) error {
	var errs []error
	dirs := map[string]bool{}
	for k := len(r.steps) - 1; k >= 0; k-- {
		s := r.steps[k]
		e := at(s.i)
		dirs[index.Parent(e.Path)] = true
		if err := r.undoStep(s, e); err != nil {
			r.a.Log.Error("cannot undo a step of a refused apply", "job", r.a.Job, "path", e.Path, "op", e.Op, "err", err)
			errs = append(errs, fmt.Errorf("undo %s %s: %w", e.Op, e.Path, err))
		}
	}
	r.steps = nil
	for d := range dirs {
		if f, err := beneath.OpenDir(r.a.Root, d); err == nil {
			f.Sync()
			f.Close()
		}
	}
	return errors.Join(errs...)
}

func (r *guardRun) undoStep(s guardStep, e store.JournalEntry) error {
	dir, base, err := beneath.Parent(r.a.Root, e.Path)
	if err != nil {
		return err
	}
	defer dir.Close()
	switch s.kind {
	case stepCreated:
		// take the new file back unless something replaced it meanwhile
		if err := beneath.MoveOut(dir, base, s.name); err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			return err
		}
		if dev, ino, err := fileID(s.name); err != nil || dev != s.dev || ino != s.ino {
			if perr := beneath.RenameNoReplace(s.name, dir, base); perr != nil {
				return fmt.Errorf("a local file replaced the new one; put it back: %w; kept as %s", perr, r.a.keep(s.name))
			}
		}
		return nil
	case stepExchanged:
		if err := beneath.Exchange(s.name, dir, base); err != nil {
			return fmt.Errorf("%w; the file it replaced is kept as %s", err, r.a.keep(s.name))
		}
		if dev, ino, err := fileID(s.name); err != nil || dev != s.dev || ino != s.ino {
			// a local file replaced the new one meanwhile: it stays
			if xerr := beneath.Exchange(s.name, dir, base); xerr != nil {
				return fmt.Errorf("a local file replaced the new one; swap it back: %w; kept as %s", xerr, r.a.keep(s.name))
			}
			return fmt.Errorf("a local file replaced the new one: it stays; the file before is kept as %s", r.a.keep(s.name))
		}
		return nil
	case stepSetAside:
		if err := beneath.RenameNoReplace(s.name, dir, base); err != nil {
			return fmt.Errorf("%w; the deleted file is kept as %s", err, r.a.keep(s.name))
		}
		return nil
	case stepMkdir:
		if err := beneath.Rmdir(dir, base); err != nil && !errors.Is(err, fs.ErrNotExist) && !errors.Is(err, syscall.ENOTEMPTY) && !errors.Is(err, syscall.EEXIST) {
			return err
		}
		return nil
	case stepRmdir:
		have := r.ops[s.i].Have()
		err := beneath.Mkdir(dir, base, uint32(have.Mode.Perm()|0o700))
		if errors.Is(err, fs.ErrExist) {
			return nil // it was not empty, or is there again
		}
		if err != nil {
			return err
		}
		if uid, gid, ok := r.a.ownerFor(index.Parent(e.Path), true, r.a.newOwners()); ok {
			if err := beneath.Lchown(dir, base, uid, gid); err != nil {
				return err
			}
		}
		fallthrough
	case stepMeta:
		have := r.ops[s.i].Have()
		if err := beneath.Chmod(dir, base, index.UnixMode(have.Mode)); err != nil {
			return err
		}
		return beneath.Chtimes(dir, base, have.MTime)
	}
	return nil
}

// finish removes what the renames displaced, once all went through.
func (r *guardRun) finish() {
	for _, s := range r.steps {
		if s.kind == stepExchanged || s.kind == stepSetAside {
			os.Remove(s.name)
		}
	}
	r.steps = nil
}

// keep renames name, a displaced local file in the staging directory, to
// a name no cleanup of staging files removes, and returns that name.
func (a *Applier) keep(name string) string {
	kept := name + ".kept"
	if err := os.Rename(name, kept); err != nil {
		return name
	}
	a.Log.Error("a local file displaced by an apply could not be put back; it is kept in the staging directory", "job", a.Job, "file", kept)
	return kept
}

// fileHash returns the hash of the regular file at name, and whether
// anything is there (a zero hash for anything but a regular file).
func fileHash(name string) (index.Hash, bool, error) {
	fi, err := os.Lstat(name)
	if errors.Is(err, fs.ErrNotExist) {
		return index.Hash{}, false, nil
	}
	if err != nil {
		return index.Hash{}, false, err
	}
	if !fi.Mode().IsRegular() {
		return index.Hash{}, true, nil
	}
	f, err := os.Open(name)
	if err != nil {
		return index.Hash{}, true, err
	}
	defer f.Close()
	h, _, err := index.HashReader(f)
	if err != nil {
		return index.Hash{}, true, fmt.Errorf("hash %s: %w", name, err)
	}
	return h, true, nil
}

// recoverWrite rolls entry e of a swapping journal (store.Journal.Exchange)
// forward at start-up, checked against what the apply replaced
// (e.OldHash; nothing when zero) as the stamps of the apply are gone: a
// file edited, created or removed at the path while the agent was down
// stays, the entry is dropped (dropRecovered), and the job decides the
// member's version again against it once it runs. The staged file tells
// how far the entry got: gone, renamed; the entry's content, not yet;
// what the apply replaced, swapped and done; anything else, a local file
// swapped out before the apply could check it, which goes back. Hashing
// is cheap here: a mesh apply's files, after a crash.
func (a *Applier) recoverWrite(e store.JournalEntry, dir *os.File, base string) error {
	h, there, err := fileHash(e.Staged)
	switch {
	case err != nil:
		return err
	case !there:
		return nil // renamed before the crash
	case h == e.Hash:
	case !e.OldHash.IsZero() && h == e.OldHash:
		return os.Remove(e.Staged) // swapped and checked
	default:
		if err := beneath.Exchange(e.Staged, dir, base); err != nil {
			return fmt.Errorf("swap back a local file: %w; it is kept as %s", err, a.keep(e.Staged))
		}
		return a.dropRecovered(e)
	}
	if e.OldHash.IsZero() {
		err := beneath.RenameNoReplace(e.Staged, dir, base)
		switch {
		case errors.Is(err, fs.ErrExist):
			return a.dropRecovered(e)
		case errors.Is(err, errors.ErrUnsupported):
			return beneath.Rename(e.Staged, dir, base)
		}
		return err
	}
	err = beneath.Exchange(e.Staged, dir, base)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return a.dropRecovered(e) // removed here
	case errors.Is(err, errors.ErrUnsupported):
		return beneath.Rename(e.Staged, dir, base)
	case err != nil:
		return err
	}
	if h, _, err := fileHash(e.Staged); err == nil && h == e.OldHash {
		return os.Remove(e.Staged)
	}
	if err := beneath.Exchange(e.Staged, dir, base); err != nil {
		return fmt.Errorf("swap back a local file: %w; it is kept as %s", err, a.keep(e.Staged))
	}
	return a.dropRecovered(e)
}

// recoverDelete rolls the delete e of a swapping journal forward at
// start-up, as recoverWrite does a write: the file is set aside at its
// staged name and removed only when it holds e.OldHash; a file there
// that does not goes back.
func (a *Applier) recoverDelete(e store.JournalEntry, dir *os.File, base string) error {
	if e.Staged == "" {
		return a.executeOne(e, dir, base, map[string]bool{}, nil)
	}
	h, there, err := fileHash(e.Staged)
	if err != nil {
		return err
	}
	if !there {
		err := beneath.MoveOut(dir, base, e.Staged)
		switch {
		case errors.Is(err, fs.ErrNotExist):
			return nil // gone
		case errors.Is(err, errors.ErrUnsupported):
			return a.executeOne(e, dir, base, map[string]bool{}, nil)
		case err != nil:
			return err
		}
		if h, _, err = fileHash(e.Staged); err != nil {
			return err
		}
	}
	if h == e.OldHash {
		return os.Remove(e.Staged)
	}
	if err := beneath.RenameNoReplace(e.Staged, dir, base); err != nil {
		return fmt.Errorf("put back a local file: %w; it is kept as %s", err, a.keep(e.Staged))
	}
	return a.dropRecovered(e)
}

// dropRecovered logs that Recover leaves the local file at e's path and
// removes e's staged file.
func (a *Applier) dropRecovered(e store.JournalEntry) error {
	a.Log.Warn("a file changed here while the agent was down; the interrupted apply leaves it, and the member's version is decided again", "job", a.Job, "path", e.Path, "op", e.Op)
	if err := os.Remove(e.Staged); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	return nil
}
