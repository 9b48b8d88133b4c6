package syncer

import (
	"pbxsync/internal/index"
	"pbxsync/internal/wire"
)

// generationDiff returns the paths whose item (as the index digest sees it)
// differs between prev, the source's newest generation, and local, the
// next one made of the scan state: the scan's drift since prev, so that
// no pass over the index is made. nil when it is not known that way (no
// previous generation, a drift not tracked against it).
func (j *job) generationDiff(prev, local index.Index) []string {
	if prev == nil || !j.drift.knows(prev) {
		return nil
	}
	diff := []string{}
	for p := range j.drift.paths {
		old, had := prev[p]
		it, has := local[p]
		if had != has || (had && !identical(old, it)) {
			diff = append(diff, p)
		}
	}
	return diff
}

// incremental returns the Items, Removed and Digest of the incremental
// announcement of the newest generation against the one before: from the
// paths that changed and a kept digest when those are known, else by
// comparing the two indexes.
func (j *job) incremental() ([]wire.Item, []string, []byte) {
	if j.latestDiff == nil {
		items, removed, digest := wire.Incremental(j.prevIndex, j.latest.Index)
		return items, removed, digest
	}
	items, removed := wire.Changes(j.latest.Index, j.latestDiff)
	d := j.digests.derive(j.prevIndex, j.latest.Index, j.latestDiff).Hash()
	return items, removed, d[:]
}

// offerChange is offer for a generation cur that differs from prev only at
// diff (nil: not known, offer it all): the served set is updated by the
// changed items, not rebuilt. A path listed twice counts once.
func (j *job) offerChange(cur, prev index.Index, diff []string) {
	if diff == nil || j.servedRefs == nil {
		j.offer(cur, prev)
		return
	}
	j.mu.Lock()
	defer j.mu.Unlock()
	stale := j.servedPrev
	j.servedPrev = make(map[index.Hash]int64, len(diff))
	seen := make(map[string]struct{}, len(diff))
	for _, p := range diff {
		if _, dup := seen[p]; dup {
			continue
		}
		seen[p] = struct{}{}
		if old, ok := prev[p]; ok && old.Kind == index.KindFile {
			if j.servedRefs[old.Hash]--; j.servedRefs[old.Hash] <= 0 {
				delete(j.servedRefs, old.Hash)
			}
			j.servedPrev[old.Hash] = old.Size
			j.serving[old.Hash] = old.Size
		}
		if it, ok := cur[p]; ok && it.Kind == index.KindFile {
			j.servedRefs[it.Hash]++
			j.serving[it.Hash] = it.Size
		}
	}
	for h := range stale { // the content only the generation before prev had
		if _, inCur := j.servedRefs[h]; !inCur {
			if _, inPrev := j.servedPrev[h]; !inPrev {
				delete(j.serving, h)
			}
		}
	}
}

// changedPaths is Changed(prev, local) for the source's next generation,
// from the scan drift when it is tracked against prev (see generationDiff).
func (j *job) changedPaths(prev, local index.Index) []string {
	diff := j.generationDiff(prev, local)
	if diff == nil {
		return Changed(prev, local)
	}
	return Changed(subIndex(prev, diff), subIndex(local, diff))
}

// changedByHash returns an item of the newest generation's changes whose
// content is h (inline content is changed content).
func (j *job) changedByHash(h index.Hash) (index.Item, bool) {
	for _, p := range j.latest.Changed {
		if it, ok := j.latest.Index[p]; ok && it.Kind == index.KindFile && it.Hash == h {
			return it, true
		}
	}
	return index.Item{}, false
}

// sendAnnouncement sends msg to peer, in parts when its index is large
// (wire.Split): no message has to hold a whole large index.
func (j *job) sendAnnouncement(peer string, msg *wire.Announce) error {
	parts := wire.Split(msg, j.a.partBytes)
	if len(parts) > 1 {
		j.log.Debug("announcing in parts", "peer", peer, "version", msg.Version, "items", len(msg.Items), "parts", len(parts))
	}
	for _, part := range parts {
		if err := j.a.mon.Send(peer, part); err != nil {
			return err
		}
	}
	return nil
}
