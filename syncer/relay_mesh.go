package syncer

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"sync"

	"pbxsync/internal/config"
	"pbxsync/internal/index"
	"pbxsync/internal/wire"
	"pbxsync/syncer/core"
)

// meshRelay is a mesh job's state for sites and relays (docs/protocol.md,
// "Sites and relaying"): a member sends its index to the members of
// another site once, in an envelope it signs, to that site's relay, which
// takes it as a member and hands it on; the members behind the relay
// fetch the content from it. Owned by the job's loop.
type meshRelay struct {
	relays map[string]string // remote site → the member its index goes through
	via    map[string]string // member → the relay it was last sent through ("" directly)
	// fetchVia is the relay that handed on the index being taken now
	// ("" when it came from its author): its content is fetched there.
	fetchVia string
	// newest is, per author, the Time of the newest index a relay handed
	// on to this node: an older one is a relay replaying what it kept.
	newest map[string]int64
}

// meshSitesUsed reports whether some member of the mesh job is in another
// site than this node: only then does it relay.
func (j *job) meshSitesUsed(cfg *config.Config) bool {
	for _, n := range j.cfg.Targets {
		if cfg.SiteOf(n) != cfg.Node.Site {
			return true
		}
	}
	return false
}

// meshRoutes chooses the relay of each remote site among its members that
// are up, as a push job chooses among its targets (routes), but without
// RTT and without keeping the relay in use: relay = true first, then the
// lowest ID. Every member of a site announces a change it took, so every
// sender must choose the same relay (each measures its own RTTs): a
// second relay would fetch the content across the WAN a second time. It
// returns nil when the job's members are all in this node's site.
func (j *job) meshRoutes(cfg *config.Config) map[string]string {
	if !j.meshSitesUsed(cfg) {
		return nil
	}
	mr := &j.mesh.relay
	ts := make([]siteTarget, 0, len(j.cfg.Targets))
	for _, n := range j.cfg.Targets {
		if n != j.a.node {
			st := j.siteTargetOf(cfg, n)
			st.RTT = 0
			ts = append(ts, st)
		}
	}
	next := routes(cfg.Node.Site, ts, nil)
	for site, r := range next {
		if mr.relays[site] != r {
			j.log.Info("relay of a site chosen", "site", site, "relay", r, "was", mr.relays[site])
		}
	}
	mr.relays = next
	return next
}

// sendMesh sends this member's index msg to the members to: those of its
// own site (and every member when sites are unused) directly, those of
// another site in one signed envelope per site, to the site's relay.
func (j *job) sendMesh(msg *wire.Announce, to []string) {
	cfg := j.a.cfgSnapshot()
	relays := j.meshRoutes(cfg)
	byRelay := map[string][]string{}
	var direct []string
	for _, name := range to {
		site := cfg.SiteOf(name)
		relay, ok := relays[site]
		if site == cfg.Node.Site || !ok {
			direct = append(direct, name)
			continue
		}
		byRelay[relay] = append(byRelay[relay], name)
	}
	for relay, names := range byRelay {
		if err := j.sendMeshRelayed(relay, names, msg); err != nil {
			j.log.Debug("cannot send the mesh index through a relay; sending it directly", "relay", relay, "to", names, "err", err)
			direct = append(direct, names...)
			continue
		}
		for _, n := range names {
			j.mesh.relay.setVia(n, relay)
		}
	}
	for _, name := range direct {
		j.mesh.relay.setVia(name, "")
		if err := j.a.mon.Send(name, msg); err != nil {
			j.log.Debug("cannot send the mesh index", "peer", name, "err", err)
		}
	}
}

// setVia notes the relay member was last sent through ("" directly; the
// relay itself is reached directly too).
func (mr *meshRelay) setVia(member, relay string) {
	if relay == member {
		relay = ""
	}
	if mr.via == nil {
		mr.via = map[string]string{}
	}
	mr.via[member] = relay
}

// sendMeshRelayed sends msg, signed, to relay for the members names of
// its site (the relay among them when it is due the index too).
func (j *job) sendMeshRelayed(relay string, names []string, msg *wire.Announce) error {
	envs, err := j.sealParts(msg)
	if err != nil {
		return err
	}
	for _, env := range envs {
		env.To = names
		if err := j.a.mon.Send(relay, env); err != nil {
			return fmt.Errorf("send to relay %s: %w", relay, err)
		}
	}
	return nil
}

// allowMeshRelay is the gate of a Relay envelope of a mesh job: members
// send them (their own indexes to a relay, a relay what it hands on).
func (j *job) allowMeshRelay(peer string) error {
	if j.isMeshMember(peer) {
		return nil
	}
	return fmt.Errorf("job %q: %s is not a member of it", j.cfg.Name, peer)
}

// onMeshMessage hands take the index in msg from peer and the member that
// made it: a direct Announce is peer's own; a Relay's must be signed by
// the node this node's config pins for the member it names as its origin
// (a relay can hold an index back, not change it). This node hands an
// envelope that came from its author on to the rest of its site once it
// took the index itself (when it is a recipient), so that they fetch the
// content here; what it hands on without holding it, it fetches from the
// author when they ask for it (meshHanded).
func (j *job) onMeshMessage(ctx context.Context, peer string, msg wire.Message, take func(author string, m *wire.Announce)) {
	switch m := msg.(type) {
	case *wire.Announce:
		take(peer, m)
	case *wire.Relay:
		j.onMeshRelay(ctx, peer, m, take)
	}
}

func (j *job) onMeshRelay(ctx context.Context, peer string, env *wire.Relay, take func(author string, m *wire.Announce)) {
	inner, err := wire.OpenRelay(j.a.mon.Codec(), env)
	if err != nil {
		j.log.Warn("refusing a relayed message", "peer", peer, "err", err)
		return
	}
	m, _ := inner.(*wire.Announce)
	signer := j.a.peerNamed(env.Key)
	if m == nil || !j.isMeshMember(signer) || m.Origin != signer {
		origin := ""
		if m != nil {
			origin = m.Origin
		}
		j.log.Warn("refusing a relayed mesh index: it is not signed by the member that made it", "peer", peer, "signer", signer, "origin", origin)
		return
	}
	self := slices.Contains(env.To, j.a.node)
	if peer == signer {
		// this node is its site's relay for signer
		if self {
			take(signer, m)
		}
		j.meshRelayOnward(signer, env, m)
		return
	}
	mr := &j.mesh.relay
	switch {
	case !self:
		j.log.Warn("refusing a relayed mesh index not addressed to this node", "peer", peer, "to", env.To)
		return
	case !j.sameSite(peer):
		j.log.Warn("refusing a relayed mesh index handed on by a member of another site", "peer", peer, "author", signer)
		return
	case m.Time < mr.newest[signer]:
		j.log.Warn("refusing a relayed mesh index older than one relayed before", "peer", peer, "author", signer)
		return
	}
	if mr.newest == nil {
		mr.newest = map[string]int64{}
	}
	mr.newest[signer] = m.Time
	j.log.Debug("a member's index handed on by this site's relay", "author", signer, "relay", peer)
	mr.fetchVia = peer
	defer func() { mr.fetchVia = "" }()
	take(signer, m)
}

// meshRelayOnward hands env, signed by author, on to its recipients in
// this node's site other than this node, each in an envelope of its own.
// What m, the index in env, holds that this node's own index does not
// (it is not among the recipients, or its take failed) it offers its site
// on demand first (handOn).
func (j *job) meshRelayOnward(author string, env *wire.Relay, m *wire.Announce) {
	onward := false
	for _, to := range env.To {
		onward = onward || to != j.a.node && to != author
	}
	if onward {
		j.handed.handOn(author, m, j.mesh.m.Item)
	}
	for _, to := range env.To {
		if to == j.a.node || to == author {
			continue
		}
		if !j.isMeshMember(to) || !j.sameSite(to) {
			j.log.Warn("not relaying a mesh index to a peer that is no member of the job in this site", "to", to, "author", author)
			continue
		}
		cp := *env
		cp.To = []string{to}
		if err := j.a.mon.Send(to, &cp); err != nil {
			j.log.Debug("cannot relay a mesh index", "to", to, "err", err)
		}
	}
}

// meshHanded is what a mesh relay handed on to its site that its own
// index did not hold then: per author, the content of the author's last
// two indexes it handed on (all their parts) that this relay may lack (a
// member may still fetch what the one before the last named when the
// last arrives). A member
// behind the relay asks the relay for it as soon as it has the index,
// maybe before the relay took that index itself or when it never does
// (the index was not addressed to it, its take failed): the relay then
// fetches the content from the author and serves it (meshRelayFetch),
// so it crosses the WAN once. Written by the job's loop, read by the
// goroutines that serve content.
type meshHanded struct {
	mu sync.Mutex
	by map[string][2]handedIndex // author → its last index handed on, and the one before
}

// handedIndex is the content of an author's index that a relay handed on
// without holding it in its own index.
type handedIndex struct {
	time    int64                // the index's Time: its parts share it
	content map[index.Hash]int64 // hash → size
}

// handOn notes the content of m, author's index (or a part of it), that
// own, this node's mesh index, does not hold: a part of the index handed
// on last adds to it; a newer index becomes the last, the last the one
// before (the older one is forgotten).
func (h *meshHanded) handOn(author string, m *wire.Announce, own func(path string) (index.Item, bool)) {
	content := map[index.Hash]int64{}
	for _, it := range m.Items {
		if it.Deleted || index.Kind(it.Kind) != index.KindFile {
			continue
		}
		hash := wire.HashOf(it.Hash)
		if cur, ok := own(it.Path); ok && !cur.Deleted && cur.Hash == hash {
			continue // served as this node's own version (offerMesh)
		}
		content[hash] = it.Size
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	two, ok := h.by[author]
	switch {
	case ok && two[0].time == m.Time:
		maps.Copy(two[0].content, content)
	case len(content) == 0 && len(two[0].content) == 0:
		delete(h.by, author)
	default:
		if h.by == nil {
			h.by = map[string][2]handedIndex{}
		}
		h.by[author] = [2]handedIndex{{time: m.Time, content: content}, two[0]}
	}
}

// lookup returns the author and size of content hash, when this relay
// handed it on.
func (h *meshHanded) lookup(hash index.Hash) (author string, size int64, ok bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for a, two := range h.by {
		for _, x := range two {
			if n, ok := x.content[hash]; ok {
				return a, n, true
			}
		}
	}
	return "", 0, false
}

// meshRelayFetch is serveGet's way to content h (at path) that this node
// does not serve as its own: when it is a mesh relay that handed h on to
// peer's site, it makes sure the store holds h, fetching it from its
// author (once however many members ask, and not beside its own fetch of
// it: fetchOnce), and returns its size. ok is false when this node did
// not hand h on to peer (or peer is not of its site).
func (j *job) meshRelayFetch(ctx context.Context, peer, path string, h index.Hash) (size int64, ok bool, err error) {
	if j.cfg.Mode != config.ModeMesh || !j.isMeshMember(peer) || !j.sameSite(peer) {
		return 0, false, nil
	}
	author, size, ok := j.handed.lookup(h)
	if !ok || j.a.store.Has(h) {
		return size, ok, nil
	}
	_, err = j.fed.fetchOnce(ctx, h, func() error {
		j.log.Debug("fetching a member's version that this relay handed on, for its site", "path", path, "author", author, "for", peer)
		it := index.Item{Path: path, Kind: index.KindFile, Size: size, Hash: h}
		if err := j.fetchFrom(ctx, author, it, fetchRequest{storeOnly: true}); err != nil {
			return fmt.Errorf("relay %s cannot fetch %s from its author %s: %w", j.a.node, path, author, err)
		}
		return nil
	})
	return size, true, err
}

// meshFetch fetches the content of it, a version of peer's: from the relay
// that handed on peer's index when there is one (the copy that crossed to
// this site), else, or when the relay does not have it, from peer. When
// this node fetches it already for a member of its site (meshRelayFetch),
// it waits for that fetch instead.
func (j *job) meshFetch(ctx context.Context, peer string, it index.Item) error {
	ran, err := j.fed.fetchOnce(ctx, it.Hash, func() error { return j.meshFetchOwn(ctx, peer, it) })
	if ran || err == nil && j.a.store.Has(it.Hash) {
		return err
	}
	return j.meshFetchOwn(ctx, peer, it) // the other fetch failed or stored nothing
}

// meshFetchOwn is meshFetch's own fetch.
func (j *job) meshFetchOwn(ctx context.Context, peer string, it index.Item) error {
	if via := j.mesh.relay.fetchVia; via != "" && via != peer {
		err := j.fetchOne(ctx, via, it)
		if err == nil {
			return nil
		}
		j.log.Info("cannot fetch a member's version from this site's relay; fetching it from the member", "path", it.Path, "relay", via, "member", peer, "err", err)
	}
	return j.fetchOne(ctx, peer, it)
}

// meshRelayDown sends this node's index at once to the members it last
// sent it through peer, a relay that went down: the next relay of their
// site hands it on. It is one index for all of them (PeersUp), so one
// envelope per site, which names the site's new relay too when it is due
// the index: that relay takes it before it hands it on. (One envelope per
// member made the relay hand on the others' at once, before it held the
// content, and they fetched it across the WAN a second time.)
func (j *job) meshRelayDown(ctx context.Context, peer string) {
	var again []string
	for n, via := range j.mesh.relay.via {
		if via == peer && j.a.mon.Connected(n) {
			again = append(again, n)
		}
	}
	if len(again) == 0 {
		return
	}
	slices.Sort(again)
	j.carryMesh(ctx, j.mesh.m.Step(core.PeersUp{Peers: again}))
}
