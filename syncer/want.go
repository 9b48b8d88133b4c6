package syncer

import (
	"bytes"
	"context"
	"maps"
	"slices"

	"pbxsync/internal/index"
	"pbxsync/internal/store"
	"pbxsync/internal/wire"
)

// plainWant is a target's record of the generation whose index is exactly
// what it admitted of a source version (nothing kept beside it): the base
// on which the next incremental announcement is admitted path by path.
type plainWant struct {
	version uint64            // the source version last admitted without kept paths
	refused map[string]string // what that admission refused
	gen     *store.Generation // the generation made of it, once applied good
	// identity says that admission took the announced index as it is
	// (nothing refused, no bit dropped): the announced index is then no
	// map of its own (j.announced is want, or nil once want is the
	// newest generation's), and the next incremental announcement changes
	// the spare copy of the newest index directly (see wantOf).
	identity bool
}

// wantOf rebuilds the index announcement m describes and admits it: the
// index this target is to hold. changed lists the paths where it differs
// from the newest generation's index when that is known without a pass
// over the whole index (an incremental announcement on the generation
// this target made of its base), nil otherwise. ok is false when m is
// incremental on a base this node does not hold (it asks for a resync).
func (j *job) wantOf(m *wire.Announce) (want index.Index, changed []string, ok bool) {
	if m.Base == 0 {
		// admitted as its parts came (see partAdmission), or now
		announced, ad, ok := j.admitting.result(m.Version)
		if !ok {
			announced = wire.ToIndex(m.Items)
			ad = admit(announced, j.admitFilter(announced), j.cfg.PreserveSUID)
		}
		j.log.Debug("a complete announcement", "source_version", m.Version, "items", announced.Len(), "by_parts", ok)
		// a large one leaves its decoded messages and maps behind even
		// when it makes no generation (a repeat during a long initial
		// sync): the memory goes back to the system afterwards too
		j.noteGeneration(announced.Len())
		return j.tookAll(m, announced, ad), nil, true
	}
	if j.holdsAsked(m) {
		// the question "do you hold it?" about the newest generation
		// (after a restart of either side): answered from that
		// generation's index, with no copy of it and no admission built
		j.log.Debug("asked whether this node holds its newest generation", "source_version", m.Version)
		j.plain = plainWant{version: m.Version, identity: true}
		j.announced, j.announcedVersion = index.Index{}, m.Version
		return j.latest.Index, []string{}, true
	}
	if p := j.plain; p.identity && p.gen != nil && p.gen == j.latest && p.version == m.Base && len(m.Unreadable) == 0 {
		return j.wantOfSpare(m)
	}
	// an incremental announcement: rebuild the index from the base this
	// node holds, in place, or ask for the complete one
	switch {
	case !j.announced.IsNil() && j.announcedVersion == m.Base:
		if (j.latest != nil && j.announced.Same(j.latest.Index)) || (j.retry != nil && j.announced.Same(j.retry.Index)) {
			// an identity admission's want, which a generation holds:
			// changed in a copy
			j.announced = j.announced.Clone()
		}
	case j.latest != nil && j.latest.SourceVersion == m.Base:
		j.announced, j.announcedVersion = j.latest.Index.Clone(), m.Base
	default:
		return index.Index{}, nil, false
	}
	d := j.digests.of(j.announced)
	paths, err := m.ApplyTo(j.announced, &d)
	if err != nil {
		j.log.Info("asking for a complete announcement", "err", err)
		return index.Index{}, nil, false
	}
	j.digests.put(j.announced, d)
	j.announcedVersion = m.Version
	if p := j.plain; p.gen != nil && p.gen == j.latest && p.version == m.Base && len(m.Unreadable) == 0 {
		// on the generation made of the base: admit what changed only
		j.log.Debug("admitting an announcement by its changes", "source_version", m.Version, "paths", len(paths))
		want = j.takeSpare(paths)
		ad := admitChanges(admission{want: want, refused: maps.Clone(p.refused)}, j.announced, paths, j.admitFilter(j.announced), j.cfg.PreserveSUID)
		want = j.admitted(m.Version, ad)
		j.digests.derive(j.latest.Index, want, paths)
		j.plain = plainWant{version: m.Version, refused: ad.refused}
		return want, paths, true
	}
	j.log.Debug("admitting an incremental announcement in full", "source_version", m.Version, "base", m.Base)
	return j.tookAll(m, j.announced, admit(j.announced, j.admitFilter(j.announced), j.cfg.PreserveSUID)), nil, true
}

// tookAll records ad, the admission of the whole announced index of m,
// and returns want. When admission takes it as it is, want is the
// announced index: the announced index is let go (one index less held) and
// j.announced is want.
func (j *job) tookAll(m *wire.Announce, announced index.Index, ad admission) index.Index {
	if ad.want.Same(announced) && len(m.Unreadable) > 0 {
		ad.want = announced.Clone() // what is kept at them goes into want alone
	}
	want := j.admitted(m.Version, ad)
	j.notePlain(m, want)
	j.announced, j.announcedVersion = announced, m.Version
	if j.plain.version == m.Version && len(ad.refused) == 0 && len(ad.dropped) == 0 {
		j.plain.identity = true
		j.announced = want
	}
	return want
}

// wantOfSpare is wantOf for an incremental announcement on the generation
// made of its base by an identity admission: the announced index is the
// newest generation's, so the announcement changes the spare copy of it
// directly (its digest checked by ApplyTo) and only the changed paths are
// admitted again. No announced index is kept beside it. When that
// admission refuses or changes something, the announced index gets its
// own table again.
func (j *job) wantOfSpare(m *wire.Announce) (index.Index, []string, bool) {
	want := j.takeSpare(nil)
	d := j.digests.of(j.latest.Index)
	paths, err := m.ApplyTo(want, &d) // on error want is as it was
	if err != nil {
		j.log.Info("asking for a complete announcement", "err", err)
		return index.Index{}, nil, false
	}
	j.spare.use.paths = paths
	j.log.Debug("admitting an announcement by its changes", "source_version", m.Version, "paths", len(paths))
	ad := admitInPlace(want, paths, j.admitFilter(want), j.cfg.PreserveSUID)
	want = j.admitted(m.Version, ad)
	j.plain = plainWant{version: m.Version, refused: ad.refused, identity: len(ad.refused) == 0 && len(ad.dropped) == 0}
	j.announced, j.announcedVersion = index.Index{}, m.Version
	if j.plain.identity {
		j.digests.put(want, d)
		return want, paths, true
	}
	// the announced index differs from want now: rebuild it
	announced := j.latest.Index.Clone()
	ad2 := j.digests.of(j.latest.Index)
	if _, err := m.ApplyTo(announced, &ad2); err != nil {
		j.log.Info("asking for a complete announcement", "err", err)
		return index.Index{}, nil, false
	}
	j.digests.put(announced, ad2)
	j.announced = announced
	j.digests.derive(j.latest.Index, want, paths)
	return want, paths, true
}

// holdsAsked reports whether m asks whether this node holds the
// generation it is on (an announcement against its own version that
// changes nothing) and the newest generation's index is exactly that
// version as announced (its digest) and as this node admits it now (its
// filters and setuid policy change nothing in it; they may have changed
// since the generation was made). It costs one pass over the index, no
// copy of it.
func (j *job) holdsAsked(m *wire.Announce) bool {
	if j.latest == nil || m.Base != m.Version || j.latest.SourceVersion != m.Base ||
		len(m.Items) > 0 || len(m.Removed) > 0 || len(m.Unreadable) > 0 {
		return false
	}
	d := j.digests.of(j.latest.Index).Hash()
	if !bytes.Equal(d[:], m.Digest) {
		return false
	}
	return admitsAll(j.latest.Index, j.admitFilter(j.latest.Index), j.cfg.PreserveSUID)
}

// notePlain adds what the target keeps at the source's unreadable paths
// to want and records whether want is plain (nothing kept).
func (j *job) notePlain(m *wire.Announce, want index.Index) {
	j.plain = plainWant{}
	if j.keepUnreadable(m.Version, m.Unreadable, want) {
		return
	}
	j.plain = plainWant{version: m.Version, refused: maps.Clone(j.refusedRemote)}
}

// sameAt reports whether a and b are Equal at paths (and so, when they
// are the same elsewhere, Equal).
func sameAt(a, b index.Index, paths []string) bool {
	for _, p := range paths {
		x, inA := a.Get(p)
		y, inB := b.Get(p)
		if inA != inB {
			return false
		}
		if inA && !sameForSync(x, y) {
			return false
		}
	}
	return true
}

// identicalAt reports whether a and b hold the very same items at paths
// (version vectors included).
func identicalAt(a, b index.Index, paths []string) bool {
	for _, p := range paths {
		x, inA := a.Get(p)
		y, inB := b.Get(p)
		if inA != inB || (inA && (!x.SameContent(y) || x.Size != y.Size || x.MTime != y.MTime || x.Hash != y.Hash || !slices.Equal(x.Version, y.Version))) {
			return false
		}
	}
	return true
}

// subIndex returns the items of x at paths.
func subIndex(x index.Index, paths []string) index.Index {
	out := index.New(len(paths))
	for _, p := range paths {
		if it, ok := x.Get(p); ok {
			out.Set(it)
		}
	}
	return out
}

// refreshScope is refresh over scope only (nil: the whole tree).
func (j *job) refreshScope(ctx context.Context, want index.Index, scope []string) error {
	if scope == nil {
		return j.refresh(ctx, want)
	}
	ops := PlanPaths(j.stateLookup, IndexLookup(want), scope)
	if len(ops) == 0 {
		return nil
	}
	paths := opPaths(ops)
	return j.scanPaths(ctx, paths)
}
