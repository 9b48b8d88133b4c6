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
	for p, it := range next {
		if old, ok := prev[p]; !ok || !sameItem(old, it) {
			set = append(set, it)
		}
	}
	for p := range prev {
		if _, ok := next[p]; !ok {
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

// sameItem reports whether a and b agree in every field the store keeps.
func sameItem(a, b index.Item) bool {
	return a.Path == b.Path && a.Kind == b.Kind && a.Deleted == b.Deleted && a.Mode == b.Mode &&
		a.Size == b.Size && a.MTime == b.MTime && a.Hash == b.Hash && slices.Equal(a.Version, b.Version)
}

// record adds g (its Index complete) as the job's newest generation. When
// the job knows the newest generation it recorded, only the differences
// are handed to the store (AddGenerationChanges: O(changed) writes and
// blob checks); otherwise, or when another writer recorded one since, the
// store compares with its own copy of the newest index.
func (j *job) record(ctx context.Context, g *store.Generation) (uint64, error) {
	if r := j.recorded; r != nil {
		set, del := diffIndex(r.Index, g.Index)
		n, err := j.a.store.AddGenerationChanges(ctx, g, r.Number, set, del)
		if !errors.Is(err, store.ErrConflict) {
			if err == nil {
				j.recorded = g
			}
			return n, err
		}
		j.log.Debug("the store's newest generation is not the one this job recorded; recording against the store's", "err", err)
	}
	n, err := j.a.store.AddGeneration(ctx, g)
	if err == nil {
		j.recorded = g
	}
	return n, err
}

// newContent returns the file items of x whose content
// base does not hold at the same path: the only ones whose blobs may be
// missing from the store when base is a recorded generation (the store
// keeps the blobs of its generations).
func newContent(base, x index.Index) []index.Item {
	var out []index.Item
	for p, it := range x {
		if it.Kind != index.KindFile || it.Deleted {
			continue
		}
		if old, ok := base[p]; ok && old.Kind == index.KindFile && !old.Deleted && old.Hash == it.Hash {
			continue
		}
		out = append(out, it)
	}
	return out
}

// missingBlobs returns the items of items whose blob the store lacks, in
// one pass over the store.
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
	var out []index.Item
	for _, it := range items {
		if _, ok := set[it.Hash]; ok {
			out = append(out, it)
		}
	}
	return out
}
