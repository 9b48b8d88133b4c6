package syncer

import (
	"context"
	"fmt"
	"slices"

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
// took the index itself, so that they fetch the content here.
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
		j.meshRelayOnward(signer, env)
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
func (j *job) meshRelayOnward(author string, env *wire.Relay) {
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

// meshFetch fetches the content of it, a version of peer's: from the relay
// that handed on peer's index when there is one (the copy that crossed to
// this site), else, or when the relay does not have it, from peer.
func (j *job) meshFetch(ctx context.Context, peer string, it index.Item) error {
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
