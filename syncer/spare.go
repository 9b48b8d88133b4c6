package syncer

import (
	"slices"
	"time"

	"pbxsync/internal/index"
	"pbxsync/internal/store"
)

// spareIndex is a target's second copy of its newest generation's index.
// An incremental announcement changes it at the announced paths into the
// index to apply (want), so that admitting a one-file change does not copy
// the whole index: once the announcement is handled (settleSpare), the
// copy that is no longer the newest index is brought to the other's
// content at those paths and becomes the spare. It costs one index of
// memory while announcements come, against one copy of the index per
// announcement; once none came for spareIdle the job lets go of it
// (dropIdleSpare), and the next one copies the index again (a copy of the
// index's items and table, see index.Index.Clone: ~2 ms at 100,000 files).
type spareIndex struct {
	x    index.Index       // equal to of.Index when not in use
	of   *store.Generation // the generation x is a copy of
	use  *spareUse         // x is in use as want
	used time.Time         // when the last announcement that used x was settled
}

// spareIdle is how long a target keeps its spare after the last
// announcement that used it: edits come in bursts (an operator's saves, a
// provisioning run), and an idle target holds one index, not two (15 MiB
// each at 100,000 files).
const spareIdle = 10 * time.Second

// spareUse is an announcement's use of the spare: want is the spare
// changed at paths, base the newest generation when it was taken.
type spareUse struct {
	want  index.Index
	base  *store.Generation
	paths []string
}

// takeSpare returns the spare, a copy of the newest generation's index
// (made now if there is none), for the caller to change at paths into
// the index to apply; settleSpare must follow.
func (j *job) takeSpare(paths []string) index.Index {
	sp := &j.spare
	if sp.use != nil {
		j.settleSpare()
	}
	if sp.stale(j.latest) {
		sp.x, sp.of = j.a.cloneIndex(j.latest.Index), j.latest
	}
	sp.use = &spareUse{want: sp.x, base: j.latest, paths: slices.Clone(paths)}
	return sp.x
}

// cloneItemBytes is about the heap an item of a copy of an index takes:
// its item and table slots (~117 bytes at 100,000; the paths and vectors
// are shared).
const cloneItemBytes = 128

// cloneIndex returns a copy of x (index.Index.Clone), telling
// Options.Memory first: the spare of a target that read its index back
// after an idle spell is the second copy made within a second (300,000
// items: 42 MB, 0.48 s with the collector running as the heap grew).
func (a *Agent) cloneIndex(x index.Index) index.Index {
	done := a.growMemory(int64(x.Len()) * cloneItemBytes)
	defer done()
	return x.Clone()
}

// stale reports whether sp holds no copy of g's index to use.
func (sp *spareIndex) stale(g *store.Generation) bool {
	return sp.of != g || sp.x.IsNil() || sp.x.Same(g.Index)
}

// readySpare makes the spare now, ahead of an announcement its source
// said is coming (wire.Wake), when the next incremental announcement
// would take it (wantOf: the newest generation is the one this target
// made of its base) and there is none. It reports whether it made one.
func (j *job) readySpare() bool {
	sp, g := &j.spare, j.latest
	if j.isSource || g == nil || g.Index.IsNil() || sp.use != nil || j.plain.gen != g || !sp.stale(g) {
		return false
	}
	sp.x, sp.of, sp.used = j.a.cloneIndex(g.Index), g, time.Now()
	return true
}

// settleSpare ends the use of the spare by an announcement: when its want
// became the newest generation's index, the index it replaced is brought
// up to date at the changed paths and is the spare; otherwise want goes
// back to the newest generation's items there. Either costs O(paths).
func (j *job) settleSpare() {
	sp := &j.spare
	u := sp.use
	if u == nil {
		return
	}
	sp.use = nil
	var from, to index.Index
	switch {
	case j.latest != nil && j.latest.Index.Same(u.want):
		from, to = u.want, u.base.Index
	case j.latest == u.base:
		from, to = u.base.Index, u.want
	default: // the newest generation changed otherwise: drop the spare
		sp.x, sp.of = index.Index{}, nil
		return
	}
	for _, p := range u.paths {
		if it, ok := from.Get(p); ok {
			to.Set(it)
		} else {
			to.Delete(p)
		}
	}
	if j.drift.base.Same(to) {
		j.drift.reset(index.Index{}, nil) // changed in place: compared in full next time
	}
	j.digests.put(to, j.digests.of(from))
	sp.x, sp.of, sp.used = to, j.latest, time.Now()
}

// dropIdleSpare lets go of the spare when no announcement used it for
// spareIdle up to now, and the digest cache of it; it reports whether it
// did.
func (j *job) dropIdleSpare(now time.Time) bool {
	sp := &j.spare
	if sp.x.IsNil() || sp.use != nil || now.Sub(sp.used) < spareIdle {
		return false
	}
	sp.x, sp.of = index.Index{}, nil
	j.retainDigests()
	return true
}
