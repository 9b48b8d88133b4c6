package syncer

import (
	"iter"
	"slices"

	"pbxsync/internal/index"
	"pbxsync/internal/wire"
)

// driftPaths returns the paths where the scan state may differ from
// prev, the source's newest generation: the scan's drift since prev, so
// that no pass over the index is made. nil when it is not known that way
// (no previous generation, a drift not tracked against it).
func (j *job) driftPaths(prev index.Index) []string {
	if prev.IsNil() || !j.drift.knows(prev) {
		return nil
	}
	return j.drift.list()
}

// incremental returns the Items, Removed and Digest of the incremental
// announcement of the newest generation against the one before: the
// items at the paths where they differ, and the newest index's kept
// digest.
func (j *job) incremental() ([]wire.Item, []string, []byte) {
	items, removed := wire.Changes(j.latest.Index, j.prev.paths)
	d := j.digests.of(j.latest.Index).Hash()
	return items, removed, d[:]
}

// offerChange is offer for a generation cur that differs from the one
// before only at diff (nil: not known, offer cur alone), where prev gives
// what the one before held: the served set is updated by the changed
// items, not rebuilt. A path listed twice counts once.
func (j *job) offerChange(cur index.Index, prev Lookup, diff []string) {
	if diff == nil || j.servedRefs == nil {
		var prevAt index.Index
		if diff != nil {
			prevAt = index.New(len(diff))
			for _, p := range diff {
				if it, ok := prev(p); ok {
					prevAt.Set(it)
				}
			}
		}
		j.offer(cur, prevAt)
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
		if old, ok := prev(p); ok && old.Kind == index.KindFile {
			j.servedRefs.remove(j.serving, old.Hash)
			j.servedPrev[old.Hash] = old.Size
			j.serving.set(old.Hash, old.Size)
		}
		if it, ok := cur.Get(p); ok && it.Kind == index.KindFile {
			j.servedRefs.add(j.serving, it.Hash, it.Size)
		}
	}
	for h := range stale { // the content only the generation before prev had
		if j.servedRefs.count(j.serving, h) == 0 {
			if _, inPrev := j.servedPrev[h]; !inPrev {
				j.servedRefs.drop(j.serving, h)
			}
		}
	}
}

// changedPaths is Changed(prev, local) for the source's next generation,
// from the scan drift when it is tracked against prev (see driftPaths).
func (j *job) changedPaths(prev, local index.Index) []string {
	diff := j.driftPaths(prev)
	if diff == nil {
		return Changed(prev, local)
	}
	return Changed(subIndex(prev, diff), subIndex(local, diff))
}

// changedByHash returns an item of the newest generation's changes whose
// content is h (inline content is changed content).
func (j *job) changedByHash(h index.Hash) (index.Item, bool) {
	for _, p := range j.latest.Changed {
		if it, ok := j.latest.Index.Get(p); ok && it.Kind == index.KindFile && it.Hash == h {
			return it, true
		}
	}
	return index.Item{}, false
}

// announcePartBytes is the default size of one part of a large
// announcement (Options.AnnouncePartBytes): wire.PartBytes. A part is
// encoded (JSON, then zstd) as one buffer, and encoding/json keeps its
// largest buffer pooled, so the part size, not the index, bounds what
// encoding an announcement of 100,000 files holds (16 MiB parts kept 20
// MiB, 2 MiB parts ~12 MB).
const announcePartBytes = wire.PartBytes

// sendAnnouncement sends msg to peer, in parts when its index is large
// (wire.Split): no message has to hold a whole large index, and
// encoding one holds one part at a time.
func (j *job) sendAnnouncement(peer string, msg *wire.Announce) error {
	for part := range j.announceParts(msg) {
		if part.Parts > 1 && part.Part == 0 {
			j.log.Debug("announcing in parts", "peer", peer, "version", msg.Version, "parts", part.Parts)
		}
		if err := j.sendToTarget(peer, part); err != nil {
			return err
		}
	}
	return nil
}

// announceParts returns the messages msg goes as: wire.Split of it, or,
// for a complete announcement whose items are made as they are sent
// (announceItems), wire.SplitFrom, which makes each part's items only
// when the part is taken.
func (j *job) announceParts(msg *wire.Announce) iter.Seq[*wire.Announce] {
	if items, ok := j.announceItems[msg]; ok {
		return wire.SplitFrom(msg, items, j.a.partBytes)
	}
	return slices.Values(wire.Split(msg, j.a.partBytes))
}
