package syncer

import (
	"sort"
	"time"
)

// siteTarget is what routing knows of one target of a push job.
type siteTarget struct {
	Name  string
	Site  string        // its site ("" when sites are unused)
	Up    bool          // this node has a live connection to it
	Relay bool          // [[peer]] relay = true
	RTT   time.Duration // 0: not measured yet
	ID    string        // its pinned node ID, the last tie-break
	// Unfit: it will not fetch the newest generation (it rejected it, or
	// an operator holds it), so it has no content to hand on; it relays
	// only when no other target of its site is up.
	Unfit bool
}

// routes decides how the origin of a push job reaches each target: a
// target of the origin's own site directly, a target of another site
// through that site's relay, which the returned map gives per site (a
// site without a relay has no entry: none of its targets is up). The
// relay of a site is among its targets that are up: the current one
// (current[site]) while it is up and no up target outranks it by being
// fit or having relay = true, else the best by fitness, relay = true,
// then the lowest measured RTT (an unmeasured one last), then the lowest
// ID. It is pure.
func routes(ownSite string, targets []siteTarget, current map[string]string) map[string]string {
	bySite := map[string][]siteTarget{}
	for _, t := range targets {
		if t.Site != ownSite && t.Up {
			bySite[t.Site] = append(bySite[t.Site], t)
		}
	}
	out := map[string]string{}
	for site, ts := range bySite {
		sort.Slice(ts, func(i, k int) bool { return betterRelay(ts[i], ts[k]) })
		best := ts[0]
		for _, t := range ts {
			if t.Name == current[site] && t.Relay == best.Relay && t.Unfit == best.Unfit {
				best = t // keep the relay in use: no churn on RTT noise
			}
		}
		out[site] = best.Name
	}
	return out
}

// betterRelay orders relay candidates: fit ones first, then relay =
// true, then lower RTT (unmeasured last), then lower ID.
func betterRelay(a, b siteTarget) bool {
	if a.Unfit != b.Unfit {
		return !a.Unfit
	}
	if a.Relay != b.Relay {
		return a.Relay
	}
	if (a.RTT == 0) != (b.RTT == 0) {
		return a.RTT != 0
	}
	if a.RTT != b.RTT {
		return a.RTT < b.RTT
	}
	return a.ID < b.ID
}

// viaOf returns the relay through which target t is reached ("" when
// directly: its own site, or it is its site's relay) and whether it is
// reachable at all (a target of another site whose site has no relay up
// is not).
func viaOf(ownSite string, t siteTarget, relays map[string]string) (via string, ok bool) {
	if t.Site == ownSite {
		return "", t.Up
	}
	r, ok := relays[t.Site]
	if !ok {
		return "", false
	}
	if r == t.Name {
		return "", true
	}
	return r, true
}
