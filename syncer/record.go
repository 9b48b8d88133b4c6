package syncer

import (
	"context"
	"errors"
	"slices"

	"pbxsync/internal/index"
	"pbxsync/internal/store"
)

// diffIndex returns what turns prev into next: the items of next that
// prev lacks or holds differently (any field the store keeps), and the
// paths of prev that next lacks, both sorted by path.
func diffIndex(prev, next index.Index) (set []index.Item, del []string) {
	for p, it := range next.All() {
		if old, ok := prev.Get(p); !ok || !old.Equal(&it) {
			set = append(set, it)
		}
	}
	for p := range prev.Paths() {
		if !next.Has(p) {
			del = append(del, p)
		}
	}
	slices.SortFunc(set, func(a, b index.Item) int {
		if a.Path < b.Path {
			return -1
		}
		if a.Path > b.Path {
			return 1
		}
		return 0
	})
	slices.Sort(del)
	return set, del
}

// changeSet is what a new generation changes against the job's newest
// recorded one: set holds the new or changed items, del the removed
// paths. full, when set, returns the new generation's complete index (for
// a record against the store's own copy, when the newest recorded
// generation is not the one the changes are against).
type changeSet struct {
	set  []index.Item
	del  []string
	full func() index.Index
}

// applyChanges applies ch to x in place and returns x.
func applyChanges(x index.Index, ch *changeSet) index.Index {
	for _, it := range ch.set {
		x.Set(it)
	}
	for _, p := range ch.del {
		x.Delete(p)
	}
	return x
}

// diffAt is diffIndex where prev and next may differ only at paths.
func diffAt(prev, next Lookup, paths []string) *changeSet {
	sorted := slices.Clone(paths)
	slices.Sort(sorted)
	ch := &changeSet{}
	for i, p := range sorted {
		if i > 0 && sorted[i-1] == p {
			continue
		}
		old, had := prev(p)
		it, has := next(p)
		switch {
		case has && (!had || !old.Equal(&it)):
			ch.set = append(ch.set, it)
		case had && !has:
			ch.del = append(ch.del, p)
		}
	}
	return ch
}

// record adds g as the job's newest generation. ch, when given, is what g
// changes against the newest generation this job recorded (j.recorded);
// otherwise g.Index is complete and the changes are found by comparing it
// with j.recorded's. Only the differences are handed to the store
// (AddGenerationChanges: O(changed) writes and blob checks). When the
// job knows no recorded generation, or another writer recorded one since,
// the store compares g's complete index (ch.full's, when ch is given:
// g.Index then becomes it) with its own copy of the newest index.
func (j *job) record(ctx context.Context, g *store.Generation, ch *changeSet) (uint64, error) {
	defer func() { g.OnProgress = nil }() // g outlives the record (j.latest)
	if r := j.recorded; r != nil {
		if ch == nil {
			ch = &changeSet{}
			ch.set, ch.del = diffIndex(r.Index, g.Index)
		}
		n, err := j.a.store.AddGenerationChanges(ctx, g, r.Number, ch.set, ch.del)
		if !errors.Is(err, store.ErrConflict) {
			if err == nil {
				j.recorded = g
			}
			return n, err
		}
		j.log.Debug("the store's newest generation is not the one this job recorded; recording against the store's", "err", err)
	}
	if ch != nil && ch.full != nil {
		g.Index = ch.full()
	}
	n, err := j.a.store.AddGeneration(ctx, g)
	if err == nil {
		j.recorded = g
	}
	return n, err
}

// missingChunk is how many items missingContent looks up in the store
// at once.
const missingChunk = 4096

// missingContent returns the file items of x whose content base does not
// hold at the same path (the only ones whose blobs may be missing from
// the store when base is a recorded generation: the store keeps the blobs
// of its generations) and whose blob the store lacks. It looks them up
// missingChunk at a time: an initial sync's 100k new files, found in the
// store as the fetch or the scan left them, were held as a list of items
// and a list and a set of their hashes at once (~30 MB of a target's heap).
func (j *job) missingContent(base, x index.Index) []index.Item {
	var out, chunk []index.Item
	for p, it := range x.All() {
		if it.Kind != index.KindFile || it.Deleted {
			continue
		}
		if old, ok := base.Get(p); ok && old.Kind == index.KindFile && !old.Deleted && old.Hash == it.Hash {
			continue
		}
		if chunk == nil {
			chunk = make([]index.Item, 0, min(x.Len(), missingChunk))
		}
		chunk = append(chunk, it)
		if len(chunk) == missingChunk {
			out = append(out, j.missingBlobs(chunk)...)
			chunk = chunk[:0]
		}
	}
	return append(out, j.missingBlobs(chunk)...)
}

// missingBlobs returns the items of items whose blob the store lacks, in
// one pass over the store. It filters items in place (the result shares
// its array).
func (j *job) missingBlobs(items []index.Item) []index.Item {
	hs := make([]index.Hash, 0, len(items))
	for _, it := range items {
		hs = append(hs, it.Hash)
	}
	miss := j.a.store.Missing(hs)
	if len(miss) == 0 {
		return nil
	}
	set := make(map[index.Hash]struct{}, len(miss))
	for _, h := range miss {
		set[h] = struct{}{}
	}
	out := items[:0]
	for _, it := range items {
		if _, ok := set[it.Hash]; ok {
			out = append(out, it)
		}
	}
	return out
}
