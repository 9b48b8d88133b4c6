package syncer

import (
	"pbxsync/hostmon"
	"pbxsync/internal/index"
)

// drift tracks where a job's scanned tree (job.states) may differ from one
// index, its base (a generation's), so that "does the tree still hold that
// generation?" and "what must an apply touch?" cost O(paths changed since)
// instead of a pass over the whole tree. Every in-place change of the scan
// state adds its paths; a base the drift does not know is compared in
// full once and then tracked.
type drift struct {
	base  index.Index         // the zero Index: nothing known
	paths map[string]struct{} // where states may differ from base
}

// touch records that the scan state changed at paths.
func (d *drift) touch(paths []string) {
	if d.base.IsNil() {
		return
	}
	if d.paths == nil {
		d.paths = make(map[string]struct{}, len(paths))
	}
	for _, p := range paths {
		d.paths[p] = struct{}{}
	}
}

// reset says the scan state equals base except, perhaps, at paths.
func (d *drift) reset(base index.Index, paths []string) {
	d.base, d.paths = base, nil
	d.touch(paths)
}

// knows reports whether the drift is tracked against x (the same index).
func (d *drift) knows(x index.Index) bool {
	return d.base.Same(x)
}

// list returns the paths where the scan state may differ from the base.
func (d *drift) list() []string {
	out := make([]string, 0, len(d.paths))
	for p := range d.paths {
		out = append(out, p)
	}
	return out
}

// sameAsTree reports whether a tree item and an index item are the same as
// far as syncing goes (see Equal).
func sameAsTree(st hostmon.FileState, inTree bool, it index.Item, inIndex bool) bool {
	if inTree != inIndex {
		return false
	}
	if !inTree {
		return true
	}
	x := st.Item
	if x.Kind != it.Kind || x.Mode != it.Mode {
		return false
	}
	return x.Kind != index.KindFile || (x.Hash == it.Hash && x.Size == it.Size && x.MTime == it.MTime)
}

// treeHolds reports whether the job's tree holds x (Equal of the scan
// state and x). Against the drift's base it checks only the paths changed
// since (and forgets those that turn out equal); against another index it
// compares everything once and tracks x from then on, with the paths
// where they differ.
func (j *job) treeHolds(x index.Index) bool {
	if !j.drift.knows(x) {
		j.drift.reset(x, differing(j.states, x))
	}
	holds := true
	for p := range j.drift.paths {
		st, inTree := j.states.Get(p)
		it, inIndex := x.Get(p)
		switch {
		case inTree == inIndex && (!inTree || identical(st.Item, it)):
			delete(j.drift.paths, p) // back to x's item
		case !sameAsTree(st, inTree, it, inIndex):
			holds = false
		}
		// else a directory's mtime differs: no change to sync, but
		// the next generation records it
	}
	return holds
}

// identical reports whether a and b agree on everything the index digest
// covers.
func identical(a, b index.Item) bool {
	return a.Kind == b.Kind && a.Mode == b.Mode && a.Size == b.Size && a.MTime == b.MTime && a.Hash == b.Hash
}

// differing lists the paths where the scan state and x differ in anything
// the index digest covers: one pass over both.
func differing(states *hostmon.States, x index.Index) []string {
	var out []string
	for p, st := range states.All() {
		if it, ok := x.Get(p); !ok || !identical(st.Item, it) {
			out = append(out, p)
		}
	}
	for p := range x.All() {
		if !states.Has(p) {
			out = append(out, p)
		}
	}
	return out
}

// stateLookup is the Lookup of the job's scan state.
func (j *job) stateLookup(p string) (index.Item, bool) {
	st, ok := j.states.Get(p)
	return st.Item, ok
}

// statesAt returns the items of the job's scan state at paths.
func (j *job) statesAt(paths []string) index.Index {
	out := index.New(len(paths))
	for _, p := range paths {
		if st, ok := j.states.Get(p); ok {
			out.Set(st.Item)
		}
	}
	return out
}

// treeBefore returns the scan state of now as an index, to be built when
// needed: the drift's base with the scan state's items at the drift's
// paths and at paths (the only places where they may differ). It keeps
// only those items, not a copy of the tree; the base must not change in
// place meanwhile (a target's generations never do).
func (j *job) treeBefore(paths []string) beforeApply {
	base := j.drift.base
	all := append(j.drift.list(), paths...)
	at := j.statesAt(all)
	return func() index.Index {
		x := base.Clone()
		for _, p := range all {
			if it, ok := at.Get(p); ok {
				x.Set(it)
			} else {
				x.Delete(p)
			}
		}
		return x
	}
}
