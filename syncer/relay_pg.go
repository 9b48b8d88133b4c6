package syncer

import (
	"context"

	"pbxsync/internal/index"
	"pbxsync/internal/wire"
)

// What relaying needs to know of the two kinds of push announcement: a
// files job's Announce and a postgres job's RowsAnnounce (docs/protocol.md,
// "Sites and relaying"). The routes, envelopes and hand-on are relay.go's,
// the same for both.

// relayedContent returns the source version an announcement announces and
// the content (hash → size) a relay serves its site for it: the files of
// an Announce, the changeset blob of a RowsAnnounce.
func relayedContent(m wire.Message) (uint64, map[index.Hash]int64) {
	content := map[index.Hash]int64{}
	switch m := m.(type) {
	case *wire.Announce:
		for _, it := range m.Items {
			if index.Kind(it.Kind) == index.KindFile {
				content[wire.HashOf(it.Hash)] = it.Size
			}
		}
		return m.Version, content
	case *wire.RowsAnnounce:
		content[wire.HashOf(m.Hash)] = m.Size
		return m.Version, content
	}
	return 0, content
}

// deliver handles a message opened from an envelope as if peer had sent
// it: in the postgres job's handling for a postgres job, else the files
// job's.
func (j *job) deliver(ctx context.Context, peer string, m wire.Message) error {
	if p, ok := j.kind.(*pgJob); ok {
		return p.onEvent(ctx, event{peer: peer, msg: m})
	}
	j.onEvent(ctx, event{peer: peer, msg: m})
	return nil
}

// fetchForSite fetches content h (size bytes, at path) from the job's
// source into this relay's store, for a target of its site (relayFetch).
func (j *job) fetchForSite(ctx context.Context, path string, h index.Hash, size int64) error {
	if p, ok := j.kind.(*pgJob); ok {
		return p.fetchRows(ctx, j.cfg.Source, h, size)
	}
	it := index.Item{Path: path, Kind: index.KindFile, Size: size, Hash: h}
	return j.fetchFrom(ctx, j.cfg.Source, it, fetchRequest{storeOnly: true})
}

// unfit reports whether target name refused the newest generation: it
// relays for its site only when no other target of it is up (siteTarget).
func (p *pgJob) unfit(name string) bool {
	t := p.targets[name]
	return t != nil && p.latest != nil && t.Rejected[p.latest.number]
}

// rollingSitesOpen returns the targets that may be sent the newest
// generation now under order "rolling-sites" (openWaves): a target is
// done with it when its database holds it.
func (p *pgJob) rollingSitesOpen() map[string]bool {
	waves := siteWaves(p.j.cfg.Targets, p.j.a.cfgSnapshot().SiteOf)
	return openWaves(waves, func(name string) bool {
		t := p.targets[name]
		return t != nil && p.latest != nil && t.Known && t.Have == p.latest.number
	})
}

// rowsAnnounce is the announcement of generation g to the targets.
func (p *pgJob) rowsAnnounce(g *pgGen) *wire.RowsAnnounce {
	return &wire.RowsAnnounce{Job: p.j.cfg.Name, Version: g.number, Base: g.base, Snapshot: g.snapshot, Origin: p.j.a.node,
		Hash: g.hash[:], Size: g.size, Rows: g.rows, Schema: g.schema}
}
