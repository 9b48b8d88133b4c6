package syncer

import "pbxsync/internal/config"

// siteTargetOf is what routing (sites.go) knows of peer name under cfg:
// its site, whether this node is connected to it and at what RTT, its
// relay = true and pinned ID. Push jobs (planRoutes) and mesh jobs
// (meshRoutes) both choose their relays from these.
func (j *job) siteTargetOf(cfg *config.Config, name string) siteTarget {
	st := siteTarget{Name: name, Site: cfg.SiteOf(name), Up: j.a.mon.Connected(name), RTT: j.a.mon.RTT(name)}
	if p, ok := cfg.PeerByName(name); ok {
		st.Relay, st.ID = p.Relay, p.ID.String()
	}
	return st
}
