package syncer

import (
	"context"
	"fmt"
	"io"
	"slices"
	"sort"
	"strings"
	"time"

	"pbxsync/hostmon"
	"pbxsync/internal/index"
)

// unreadableRetry is how often a job re-reads the entries it could not
// read, in case no event reports that they became readable.
const unreadableRetry = 10 * time.Second

// scanAll rescans the whole tree. On error j.states is left as it was: a
// failed scan never empties the job's view of its tree.
func (j *job) scanAll(ctx context.Context) error {
	return j.scanPaths(ctx, []string{""})
}

// scanPaths rescans paths (and what lies below them; "" is the whole
// tree), with the same guarantee as scanAll. It changes j.states in place
// by what the scan found different: what it costs in memory grows with
// the change, not with the tree.
func (j *job) scanPaths(ctx context.Context, paths []string) error {
	return j.scanChange(ctx, paths, nil)
}

// scanChange is scanPaths of paths and of shallow, directories whose own
// attributes changed (hostmon.Change.Shallow): those still the directory
// the scan state has are rescanned without what lies below them.
func (j *job) scanChange(ctx context.Context, paths, shallow []string) error {
	now := time.Now()
	j.states.ReadBack(len(paths) + len(shallow)) // a change of many files
	// what the scan finds as the scan state has it is neither applied,
	// nor saved again, nor a drift (below): the scan leaves it out
	opts := []hostmon.ScanOption{j.scanWritingOption(now), hostmon.WithChangesOnly()}
	if len(shallow) > 0 {
		opts = append(opts, hostmon.WithShallow(shallow))
		paths = append(slices.Clone(paths), shallow...)
	}
	if j.isSource {
		// what a source's scan reads is stored in the same read: new
		// content is what it hashes (a file whose stat it trusts is not
		// read), and storeTree then finds it in the store
		prog := j.startScanProgress()
		defer prog.stop()
		opts = append(opts, hostmon.WithSink(func(r io.Reader) (index.Hash, int64, error) {
			h, n, err := j.a.store.PutReader(ctx, r)
			if err == nil {
				prog.add(n)
			}
			return h, n, err
		}))
		// the scan of a first generation offers what it stores to the
		// targets as it goes (offer.go)
		if o := j.newOfferer(ctx); o != nil {
			opts = append(opts, hostmon.WithStored(o.stored))
			defer o.close()
		}
	}
	first := j.states.Len() == 0
	if first {
		// the scan state is built as the scan goes (a map of every
		// state found, then a copy of it, was most of a 100k source's
		// heap while it scanned)
		opts = append(opts, hostmon.WithInitialStates())
	}
	d, err := hostmon.ScanDelta(ctx, j.cfg.Path, j.filter, paths, j.states, j.log, opts...)
	if err != nil {
		return err
	}
	j.filesRead.Add(int64(d.Read))
	if first {
		if d.Initial != nil {
			j.states = d.Initial
		} else {
			j.states = hostmon.NewStates(d.States) // a scan of some paths only
		}
	} else {
		// what the scan found as it was (the watcher's echo of an apply's
		// renames finds every file as the apply settled it) is neither
		// applied, nor saved again, nor a drift
		for p, st := range d.States {
			if old, ok := j.states.Get(p); ok && sameScanState(old, st) {
				delete(d.States, p)
			}
		}
		j.states.Apply(d)
	}
	j.drift.touch(d.Paths())
	scope := paths
	if len(d.Shallow) > 0 {
		// a directory rescanned without what lies below it says nothing
		// of the problems there
		scope = slices.DeleteFunc(slices.Clone(paths), func(p string) bool { _, ok := slices.BinarySearch(d.Shallow, p); return ok })
	}
	if d.Full {
		scope = nil
	}
	changed := d.Paths()
	if first {
		changed = j.newPathRoots(changed)
	}
	j.takeScan(d.Unreadable, d.Refused, scope, changed)
	j.takeWriting(d.Busy, scope, now)
	return nil
}

// newPathRoots returns what stands for paths, all new to the scan state
// (the first scan's), in the notes of the next save (noteDirty): each
// directory among them stands for the paths below it when they are at
// most scanSaveChunk, and those paths are left out. An initial sync's
// 100,000 files in 100 directories are noted as the 100 directories, not
// as a map of every path held until the save (3.6 MiB of the source's
// peak heap); the save finds the paths below each in one pass over the
// scan state. Only new paths may be noted so: a noted directory saves
// every path below it, changed or not.
func (j *job) newPathRoots(paths []string) []string {
	below := map[string]int{} // the directories among paths: how many paths lie below each
	for _, p := range paths {
		if st, ok := j.states.Get(p); ok && st.Kind == index.KindDir && p != "" {
			below[p] = 0
		}
	}
	if len(below) == 0 {
		return paths
	}
	for _, p := range paths {
		countBelow(below, p)
	}
	standing := standingDirs(below)
	out := paths[:0:0]
	for _, p := range paths {
		if !underSet(index.Parent(p), standing) {
			out = append(out, p)
		}
	}
	return out
}

// countBelow counts p in below[d] for each directory d of below that p
// lies below.
func countBelow(below map[string]int, p string) {
	for a := index.Parent(p); a != ""; a = index.Parent(a) {
		if _, ok := below[a]; ok {
			below[a]++
		}
	}
}

// standingDirs returns the directories of below with at most
// scanSaveChunk paths below them: in the notes of a save each stands for
// them (nil when none does).
func standingDirs(below map[string]int) map[string]bool {
	var out map[string]bool
	for d, n := range below {
		if n <= scanSaveChunk {
			if out == nil {
				out = map[string]bool{}
			}
			out[d] = true
		}
	}
	return out
}

// takeScan takes what a scan found beside the states (already updated in
// j.states): the entries it could not read and those it refused. scope
// lists the paths that were scanned (nil: the whole tree): what was
// unreadable there and is readable now is forgotten. changed lists the
// paths whose scan state the scan recorded or removed: they are saved
// next time.
func (j *job) takeScan(unreadable, refused map[string]string, scope, changed []string) {
	var fresh, freshRefused []string
	var unreadableChanged bool
	j.unreadable, fresh, unreadableChanged = mergeProblems(j.unreadable, unreadable, scope)
	var refusedChanged bool
	j.refused, freshRefused, refusedChanged = mergeProblems(j.refused, refused, scope)
	j.noteDirty(changed)
	j.dirty = true
	j.keepLastKnown()
	for _, p := range fresh {
		j.log.Error("cannot read a file of the job; it keeps its last synced content and nothing is deleted because of it", "path", p, "err", j.unreadable[p])
	}
	for _, p := range freshRefused {
		j.log.Warn("not syncing a file whose name a job may not sync", "path", p, "reason", j.refused[p])
	}
	if unreadableChanged || refusedChanged {
		j.publishProblems()
		if unreadableChanged && len(j.unreadable) == 0 {
			j.log.Info("every file of the job is readable again")
		}
	}
}

// mergeProblems brings the problems a job knows (path -> reason) up to
// date with a scan's: a full scan (scope nil) replaces them, a scan of
// scope replaces those at and below it. It returns the new set, the paths
// that are new in it (sorted) and whether anything changed.
func mergeProblems(known, found map[string]string, scope []string) (map[string]string, []string, bool) {
	out := make(map[string]string, len(known)+len(found))
	if scope != nil && len(known) > 0 {
		// a set of the scope only when there is something it could
		// keep: the rescan after a 100,000-file apply has as many paths
		// in scope (3.6 MB of set at the target's peak), and a job
		// mostly knows no problem
		in := make(map[string]bool, len(scope))
		for _, p := range scope {
			in[strings.TrimSuffix(p, "/")] = true
		}
		for p, why := range known {
			if !underSet(p, in) {
				out[p] = why
			}
		}
	}
	var fresh []string
	for p, why := range found {
		if _, ok := known[p]; !ok {
			fresh = append(fresh, p)
		}
		out[p] = why
	}
	sort.Strings(fresh)
	changed := len(fresh) > 0 || len(out) != len(known)
	return out, fresh, changed
}

// keepLastKnown gives every entry the job cannot read (and, for a
// directory, everything below it) the state it had in the newest
// generation, or none when that generation does not hold it. What a scan
// kept from its own previous state may not be in the store, whereas the
// newest generation's content always is.
func (j *job) keepLastKnown() {
	if len(j.unreadable) == 0 {
		return
	}
	set := make(map[string]bool, len(j.unreadable))
	for p := range j.unreadable {
		set[p] = true
	}
	var touched []string
	for p := range j.states.Paths() {
		if underSet(p, set) {
			j.states.Delete(p)
			touched = append(touched, p)
		}
	}
	if j.scanDirty == nil {
		j.scanDirty = map[string]bool{}
	}
	for p := range set {
		j.scanDirty[p] = true
	}
	defer func() { j.drift.touch(touched) }()
	if j.latest == nil {
		return
	}
	for p, it := range j.latest.Index.All() {
		if underSet(p, set) {
			// no stat: the next scan of it hashes it again
			j.states.Set(hostmon.FileState{Item: it})
			touched = append(touched, p)
		}
	}
	// the parents of what was kept exist (the scan saw them, or they are
	// the unreadable entries themselves, kept above)
}

// underSet reports whether p or one of its parent directories is in set.
func underSet(p string, set map[string]bool) bool {
	for p != "" {
		if set[p] {
			return true
		}
		p = index.Parent(p)
	}
	return false
}

// retryUnreadable rescans the entries the job could not read.
func (j *job) retryUnreadable(ctx context.Context) {
	if len(j.unreadable) == 0 || time.Since(j.unreadableTried) < unreadableRetry {
		return
	}
	j.unreadableTried = time.Now()
	paths := make([]string, 0, len(j.unreadable))
	for p := range j.unreadable {
		paths = append(paths, p)
	}
	j.onLocalChange(ctx, hostmon.Change{Paths: paths})
}

// publishProblems puts what the job cannot read or refuses into its status.
func (j *job) publishProblems() {
	unreadable := problemList(j.unreadable)
	refused := problemList(j.refused)
	for _, p := range problemList(j.refusedRemote) {
		refused = append(refused, p+" (announced by the source)")
	}
	j.setStatus(func(s *JobStatus) { s.Unreadable, s.Refused = unreadable, refused })
}

func problemList(m map[string]string) []string {
	out := make([]string, 0, len(m))
	for p, why := range m {
		out = append(out, p+": "+why)
	}
	sort.Strings(out)
	return out
}

// unreadableError names what a job cannot read, for /healthz.
func unreadableError(list []string) error {
	if len(list) == 0 {
		return nil
	}
	shown := list
	if len(shown) > 5 {
		shown = append(shown[:5:5], fmt.Sprintf("… %d more", len(list)-5))
	}
	return fmt.Errorf("cannot read %d path(s): %s", len(list), strings.Join(shown, "; "))
}
