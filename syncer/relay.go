package syncer

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sync"
	"time"

	"pbxsync/internal/config"
	"pbxsync/internal/identity"
	"pbxsync/internal/index"
	"pbxsync/internal/wire"
	"pbxsync/remotemon"
)

// federation is a push job's state for sites and relays (docs/protocol.md,
// "Sites and relaying"). On the origin: the relay in use per remote site,
// the route each target was last sent on, the announcements waiting to go
// to each relay and their sealed envelopes. On a target: the relay it was
// last reached through, the envelope it hands on to its site, and the
// content it offers its site for that. Fields without a note are owned by
// the job's loop.
type federation struct {
	// origin
	relays  map[string]string                    // site → its relay
	via     map[string]string                    // target → the relay it was last sent through ("" directly)
	batch   map[string]map[wire.Message][]string // relay → announcement → its recipients
	sealed  map[*wire.Announce][]*wire.Relay
	planned bool                 // relays is up to date for this announce pass
	sends   map[string]relaySend // target → its first send of a version through a relay (withhold.go)
	suspect map[string]time.Time // relay → until when it is passed over for withholding

	// target
	relayed bool                    // onAnnounce runs on an announcement relayed by upstream
	onward  *wire.Relay             // the envelope to hand on once its content is here
	offer   [2]map[index.Hash]int64 // content of the last two relayed versions (see offerRelayed)
	offerV  uint64

	newest uint64 // the newest version relayed to this target (replays of older ones are refused)

	mu       sync.Mutex
	upstream string                    // the relay this target was last reached through (mu)
	fetching map[index.Hash]*relayCall // content this relay fetches for its site (mu; fetchOnce; a mesh job's too)
}

// relayCall is one fetch of content from the source by a relay; the
// targets of its site that ask for the content meanwhile wait for it.
type relayCall struct {
	done chan struct{}
	err  error
}

// sitesUsed reports whether some target of the job is in another site than
// this node: only then does the job relay.
func (j *job) sitesUsed() bool {
	if j.cfg.Mode != config.ModePush {
		return false
	}
	cfg := j.a.cfgSnapshot()
	for _, t := range j.cfg.Targets {
		if cfg.SiteOf(t) != cfg.Node.Site {
			return true
		}
	}
	return false
}

// planRoutes chooses the relay of each remote site for one announce pass
// (see routes).
func (j *job) planRoutes() {
	f := &j.fed
	f.planned = false
	if !j.isSource || !j.sitesUsed() {
		return
	}
	j.passOverWithholding()
	cfg := j.a.cfgSnapshot()
	ts := make([]siteTarget, 0, len(j.cfg.Targets))
	for _, name := range j.cfg.Targets {
		st := j.siteTargetOf(cfg, name)
		if t := j.targets[name]; t != nil && t.result != nil && t.result.Version == j.latestNumber() {
			st.Unfit = t.result.State == "bad" || t.result.State == ResultHeld
		}
		if p, ok := j.kind.(*pgJob); ok {
			st.Unfit = p.unfit(name)
		}
		st.Unfit = st.Unfit || time.Now().Before(f.suspect[name])
		ts = append(ts, st)
	}
	next := routes(cfg.Node.Site, ts, f.relays)
	for site, r := range next {
		if f.relays[site] != r {
			j.log.Info("relay of a site chosen", "site", site, "relay", r, "was", f.relays[site])
		}
	}
	f.relays, f.planned = next, true
}

// routeOf returns the route to target name for this announce pass: the
// relay it is reached through ("" directly; see viaOf), whether that is
// in an envelope (its site is not this node's) and whether it can be
// reached now at all.
func (j *job) routeOf(name string) (via string, relayed, ok bool) {
	if !j.fed.planned {
		return "", false, j.a.mon.Connected(name)
	}
	cfg := j.a.cfgSnapshot()
	site := cfg.SiteOf(name)
	via, ok = viaOf(cfg.Node.Site, siteTarget{Name: name, Site: site, Up: j.a.mon.Connected(name)}, j.fed.relays)
	return via, ok && site != cfg.Node.Site, ok
}

// sendRouted sends the announcement msg (an Announce or RowsAnnounce) to
// target name on its route: a target of this node's site directly, one of
// another site in an envelope to its site's relay (gathered per relay and
// message, sent by flushRelayed). It returns false when the target cannot
// be reached now.
func (j *job) sendRouted(name string, msg wire.Message) (bool, error) {
	f := &j.fed
	via, relayed, ok := j.routeOf(name)
	if !ok {
		return false, nil
	}
	if !relayed {
		return true, j.sendDirect(name, msg)
	}
	relay := f.relays[j.a.cfgSnapshot().SiteOf(name)]
	if f.batch == nil {
		f.batch = map[string]map[wire.Message][]string{}
	}
	if f.batch[relay] == nil {
		f.batch[relay] = map[wire.Message][]string{}
	}
	f.batch[relay][msg] = append(f.batch[relay][msg], name)
	j.noteRelaySend(name, relay, msg)
	if f.via == nil {
		f.via = map[string]string{}
	}
	if f.via[name] != via {
		f.via[name] = via
		j.setStatus(func(s *JobStatus) { s.setVia(name, via) })
	}
	return true, nil
}

// sendDirect sends msg to peer and counts the content it carries.
func (j *job) sendDirect(peer string, msg wire.Message) error {
	a, ok := msg.(*wire.Announce)
	if !ok {
		return j.sendToTarget(peer, msg)
	}
	if err := j.sendAnnouncement(peer, a); err != nil {
		return err
	}
	j.countInline(peer, a)
	return nil
}

// flushRelayed sends the envelopes gathered by sendRouted: one per relay
// and distinct announcement (per part of a large one), naming every
// target of that site that gets it, so that it crosses to the site once.
func (j *job) flushRelayed() {
	f := &j.fed
	for relay, msgs := range f.batch {
		for msg, to := range msgs {
			envs, err := j.sealAnnouncement(msg)
			if err != nil {
				j.log.Warn("cannot seal an announcement for a relay", "relay", relay, "err", err)
				continue
			}
			sent := true
			for _, env := range envs {
				e := *env
				e.To = to
				if err := j.a.mon.Send(relay, &e); err != nil {
					j.log.Debug("relay send failed", "relay", relay, "to", to, "err", err)
					sent = false
					break
				}
			}
			if a, ok := msg.(*wire.Announce); ok && sent {
				j.countInline(relay, a) // once per site
			}
		}
	}
	f.batch = nil
	// keep the envelopes of the announcements the job still keeps (it lets
	// go of complete ones once every target holds them)
	for m := range f.sealed {
		kept := false
		for _, a := range j.announcements {
			kept = kept || a == m
		}
		if !kept {
			delete(f.sealed, m)
		}
	}
}

// sealAnnouncement signs m (each part of an Announce) with this node's
// key, once per Announce (a RowsAnnounce is small and built per pass).
func (j *job) sealAnnouncement(m wire.Message) ([]*wire.Relay, error) {
	f := &j.fed
	msg, ok := m.(*wire.Announce)
	if !ok {
		key, err := j.a.nodeKey()
		if err != nil {
			return nil, err
		}
		env, err := wire.SealRelay(j.a.mon.Codec(), key, j.cfg.Name, []string{j.a.node}, m)
		if err != nil {
			return nil, fmt.Errorf("seal %s: %w", m.Type(), err)
		}
		return []*wire.Relay{env}, nil
	}
	if envs, cached := f.sealed[msg]; cached {
		return envs, nil
	}
	envs, err := j.sealParts(msg)
	if err != nil {
		return nil, err
	}
	if f.sealed == nil {
		f.sealed = map[*wire.Announce][]*wire.Relay{}
	}
	f.sealed[msg] = envs
	return envs, nil
}

// sealParts signs each part of msg with this node's key (To names this
// node: the sender sets the recipients on a copy).
func (j *job) sealParts(msg *wire.Announce) ([]*wire.Relay, error) {
	key, err := j.a.nodeKey()
	if err != nil {
		return nil, err
	}
	var envs []*wire.Relay
	for part := range j.announceParts(msg) {
		env, err := wire.SealRelay(j.a.mon.Codec(), key, j.cfg.Name, []string{j.a.node}, part)
		if err != nil {
			return nil, fmt.Errorf("seal version %d: %w", msg.Version, err)
		}
		envs = append(envs, env)
	}
	return envs, nil
}

// nodeKey returns this node's Ed25519 private key, which signs what it
// sends through relays.
func (a *Agent) nodeKey() (ed25519.PrivateKey, error) {
	if a.ident == nil {
		return nil, errors.New("this agent has no node identity")
	}
	key, ok := a.ident.Certificate.PrivateKey.(ed25519.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("node key is %T, want Ed25519", a.ident.Certificate.PrivateKey)
	}
	return key, nil
}

// peerNamed returns the name of the peer this node's config pins with the
// ID of key, "" when none.
func (a *Agent) peerNamed(key []byte) string {
	id := identity.IDFromPublicKey(ed25519.PublicKey(key))
	for _, p := range a.cfgSnapshot().Peers {
		if p.ID == id {
			return p.Name
		}
	}
	return ""
}

// sameSite reports whether peer is in this node's site.
func (j *job) sameSite(peer string) bool {
	cfg := j.a.cfgSnapshot()
	return cfg.SiteOf(peer) == cfg.Node.Site
}

// relaysFor reports whether this node, a target of a push job, relays
// for peer: another target of the job in this node's site, which
// may fetch content here and send its results through here.
func (j *job) relaysFor(peer string) bool {
	return j.cfg.Mode == config.ModePush && !j.isSource && peer != j.a.node &&
		contains(j.cfg.Targets, peer) && j.sameSite(peer)
}

// allowRelay is the gate of a Relay envelope from peer (see Agent.Allow):
// the source takes them from its targets (their results), a target from
// the source (announcements to hand on) and from the targets of its site
// (announcements relayed to it, results to hand back). A mesh job takes
// them from its members (allowMeshRelay).
func (j *job) allowRelay(peer string) error {
	switch {
	case j.cfg.Mode == config.ModeMesh:
		return j.allowMeshRelay(peer)
	case j.cfg.Mode != config.ModePush:
		return fmt.Errorf("job %q: only push and mesh jobs are relayed", j.cfg.Name)
	case j.isSource && contains(j.cfg.Targets, peer):
		return nil
	case !j.isSource && (peer == j.cfg.Source || j.relaysFor(peer)):
		return nil
	}
	return fmt.Errorf("job %q: %s neither sources it nor is a target of it in this site", j.cfg.Name, peer)
}

// onRelay handles an envelope from peer: it opens it (its signature must
// be a pinned node's, the one allowed to send the inner message) and
// handles the inner announcement or answer, or hands it on. The error is
// that of handling the inner message (a postgres job's loop acts on it).
func (j *job) onRelay(ctx context.Context, peer string, env *wire.Relay) error {
	inner, err := wire.OpenRelay(j.a.mon.Codec(), env)
	if err != nil {
		j.log.Warn("refusing a relayed message", "peer", peer, "err", err)
		return nil
	}
	signer := j.a.peerNamed(env.Key)
	switch inner.(type) {
	case *wire.Announce, *wire.RowsAnnounce:
		if j.isSource || signer != j.cfg.Source {
			j.log.Warn("refusing a relayed announcement: it is not signed by the job's source", "peer", peer, "source", j.cfg.Source, "signer", signer)
			return nil
		}
		return j.onRelayedAnnounce(ctx, peer, env, inner)
	case *wire.Result, *wire.RowsHave:
		switch {
		case !contains(j.cfg.Targets, signer):
			j.log.Warn("refusing a relayed result: it is not signed by a target of the job", "peer", peer, "signer", signer)
		case j.isSource:
			return j.deliver(ctx, signer, inner)
		case signer == peer && j.relaysFor(peer) && slices.Equal(env.To, []string{j.cfg.Source}):
			if err := j.a.mon.Send(j.cfg.Source, env); err != nil {
				j.log.Debug("cannot hand a result on to the source", "target", peer, "err", err)
			}
		default:
			j.log.Warn("refusing to hand on a result", "peer", peer, "signer", signer, "to", env.To)
		}
	}
	return nil
}

// onRelayedAnnounce handles an announcement signed by the source. From
// the source itself this node is its site's relay: it takes the
// announcement when it is a recipient and hands the envelope on to the
// others once it holds the content (relayOnward). From a target of its
// site it is a recipient behind that relay: it fetches from the relay and
// answers through it when the source is not connected.
func (j *job) onRelayedAnnounce(ctx context.Context, peer string, env *wire.Relay, m wire.Message) error {
	self := slices.Contains(env.To, j.a.node)
	version, _ := relayedContent(m)
	if peer == j.cfg.Source {
		var onward []string
		for _, to := range env.To {
			if to == j.a.node {
				continue
			}
			if !j.relaysFor(to) {
				j.log.Warn("not relaying to a peer that is no target of the job in this site", "to", to)
				continue
			}
			onward = append(onward, to)
		}
		if len(onward) > 0 {
			cp := *env
			cp.To = onward
			j.fed.onward = &cp
			j.offerRelayed(m)
		}
		var err error
		if self {
			err = j.deliver(ctx, peer, m)
		}
		j.relayOnward()
		return err
	}
	if !self {
		j.log.Warn("refusing a relayed announcement not addressed to this node", "peer", peer, "to", env.To)
		return nil
	}
	if version < j.fed.newest {
		// the source's newest version only grows (a rollback is a new
		// generation): an older one is a relay replaying what it kept
		j.log.Warn("refusing a relayed announcement older than one relayed before", "peer", peer, "version", version, "newest", j.fed.newest)
		return nil
	}
	if version > j.fed.newest {
		j.fed.newest = version
		j.saveReplayGuard()
	}
	j.fed.mu.Lock()
	j.fed.upstream = peer
	j.fed.mu.Unlock()
	j.fed.relayed = true
	defer func() { j.fed.relayed = false }()
	return j.deliver(ctx, peer, m)
}

// relayDown makes the targets last sent through relay peer, which went
// down, due at once: the next announce pass sends them through their
// site's next relay.
func (j *job) relayDown(peer string) {
	if !j.isSource {
		return
	}
	n := 0
	for name, via := range j.fed.via {
		if via == peer {
			j.dueNow(name)
			n++
		}
	}
	if n == 0 {
		return
	}
	if p, ok := j.kind.(*pgJob); ok {
		p.announce(false)
	} else {
		j.announce(false)
	}
}

// relayedBy reports whether the announcement onAnnounce works on came
// signed by the source through peer, this node's relay.
func (j *job) relayedBy(peer string) bool {
	if !j.fed.relayed {
		return false
	}
	j.fed.mu.Lock()
	defer j.fed.mu.Unlock()
	return j.fed.upstream == peer
}

// relayOnward hands the envelope waiting at this relay to the rest of its
// site: called once this node holds the content (or knows it will not
// fetch it), so that they fetch it here.
func (j *job) relayOnward() {
	env := j.fed.onward
	if env == nil {
		return
	}
	j.fed.onward = nil
	for _, to := range env.To {
		cp := *env
		cp.To = []string{to}
		if err := j.a.mon.Send(to, &cp); err != nil {
			j.log.Debug("cannot relay an announcement", "to", to, "err", err)
		}
	}
}

// offerRelayed makes the content of a relayed announcement (and of the one
// before it) what this relay serves to its site.
func (j *job) offerRelayed(m wire.Message) {
	f := &j.fed
	version, content := relayedContent(m)
	if version != f.offerV || f.offer[0] == nil {
		f.offer[1], f.offer[0], f.offerV = f.offer[0], map[index.Hash]int64{}, version
	}
	maps.Copy(f.offer[0], content)
	serving := make(map[index.Hash]int64, len(f.offer[0])+len(f.offer[1]))
	for _, x := range f.offer {
		for h, n := range x {
			serving[h] = n
		}
	}
	set := newServedSet(serving)
	j.mu.Lock()
	j.serving.release()
	j.serving = set
	j.mu.Unlock()
}

// sendResult sends a target's answer (Result, RowsHave) to an
// announcement that came from peer: to the source directly when it came
// from there, else up (sendUp).
func (j *job) sendResult(peer string, r wire.Message) error {
	if peer == j.cfg.Source {
		return j.a.mon.Send(peer, r)
	}
	return j.sendUp(r)
}

// sendUp sends a target's answer to the job's source: directly when
// connected, else signed, in an envelope through the relay that last
// brought this node an announcement.
func (j *job) sendUp(r wire.Message) error {
	if j.a.mon.Connected(j.cfg.Source) {
		return j.a.mon.Send(j.cfg.Source, r)
	}
	j.fed.mu.Lock()
	relay := j.fed.upstream
	j.fed.mu.Unlock()
	if relay == "" {
		return fmt.Errorf("send result to %s: %w", j.cfg.Source, remotemon.ErrNotConnected)
	}
	key, err := j.a.nodeKey()
	if err != nil {
		return err
	}
	env, err := wire.SealRelay(j.a.mon.Codec(), key, j.cfg.Name, []string{j.cfg.Source}, r)
	if err != nil {
		return err
	}
	return j.a.mon.Send(relay, env)
}

// fetchingForSite registers the content a relay fetches from the source
// for itself (one call for all of need), so that a target of its site that
// asks for some of it meanwhile waits for that fetch (relayFetch) instead
// of making the content cross the WAN a second time. The returned function
// ends the registration with the fetch's error.
func (f *federation) fetchingForSite(need []index.Item) func(*error) {
	c := &relayCall{done: make(chan struct{})}
	var mine []index.Hash
	f.mu.Lock()
	if f.fetching == nil {
		f.fetching = map[index.Hash]*relayCall{}
	}
	for _, it := range need {
		if _, ok := f.fetching[it.Hash]; !ok {
			f.fetching[it.Hash] = c
			mine = append(mine, it.Hash)
		}
	}
	f.mu.Unlock()
	return func(err *error) {
		f.mu.Lock()
		for _, h := range mine {
			delete(f.fetching, h)
		}
		f.mu.Unlock()
		if *err != nil {
			c.err = fmt.Errorf("this relay's own fetch from the source failed: %w", *err)
		}
		close(c.done)
	}
}

// relayFetch makes sure this node holds content h (size bytes) before it
// serves it to peer: on a relay that lacks it (it rejected the
// generation, or fetched it into a failed apply's staging only) it is
// fetched from the source into the store, once however many targets of
// its site ask for it at the same time. On a source it does nothing.
func (j *job) relayFetch(ctx context.Context, peer, path string, h index.Hash, size int64) error {
	if j.isSource || !j.relaysFor(peer) || j.a.store.Has(h) {
		return nil
	}
	_, err := j.fed.fetchOnce(ctx, h, func() error {
		j.log.Debug("fetching content from the source for this site", "path", path, "for", peer)
		if err := j.fetchForSite(ctx, path, h, size); err != nil {
			return fmt.Errorf("relay %s cannot fetch %s from the source: %w", j.a.node, path, err)
		}
		return nil
	})
	return err
}

// fetchOnce runs fetch, a fetch of content h into this node's store,
// unless a fetch of h is under way (one registered here or by
// fetchingForSite): then it waits for that one and returns its error. ran
// reports whether fetch ran. So content a relay's site asks for while the
// relay fetches it crosses the WAN once.
func (f *federation) fetchOnce(ctx context.Context, h index.Hash, fetch func() error) (ran bool, err error) {
	f.mu.Lock()
	if c, ok := f.fetching[h]; ok {
		f.mu.Unlock()
		select {
		case <-c.done:
			return false, c.err
		case <-ctx.Done():
			return false, ctx.Err()
		}
	}
	if f.fetching == nil {
		f.fetching = map[index.Hash]*relayCall{}
	}
	c := &relayCall{done: make(chan struct{})}
	f.fetching[h] = c
	f.mu.Unlock()
	c.err = fetch()
	f.mu.Lock()
	delete(f.fetching, h)
	f.mu.Unlock()
	close(c.done)
	return true, c.err
}
