package syncer

// Order "rolling-sites": a rollout goes one site at a time. In each site
// the first host (in the job's targets) gets the generation alone, as the
// site's canary; once it is good the rest of the site gets it together;
// once the whole site is good the next site starts. Sites come in the
// order their first host appears in targets. A rejection stops the
// rollout: the rejecting host's wave never completes, so no later wave
// opens. Health gating is that of order "rolling": a target whose
// Asterisk is down is not sent the generation and holds its wave.
//
// Both functions are pure; announce (source.go) asks openWaves which
// targets may have the newest generation now.

// siteWaves splits targets into the waves of a rolling-sites rollout:
// for each site, in the order of its first host in targets, that host
// alone, then the site's other hosts (in targets order) together.
// siteOf names a target's site ("" for everyone in one site).
func siteWaves(targets []string, siteOf func(string) string) [][]string {
	var sites []string
	hosts := map[string][]string{}
	for _, t := range targets {
		s := siteOf(t)
		if _, seen := hosts[s]; !seen {
			sites = append(sites, s)
		}
		hosts[s] = append(hosts[s], t)
	}
	var waves [][]string
	for _, s := range sites {
		h := hosts[s]
		waves = append(waves, h[:1:1])
		if len(h) > 1 {
			waves = append(waves, h[1:])
		}
	}
	return waves
}

// openWaves returns the targets that may be sent the newest generation
// now: those of every wave up to and including the first wave with a
// target that is not done with it (done: it answered good, or it is held
// and the rollout goes on past it).
func openWaves(waves [][]string, done func(string) bool) map[string]bool {
	open := map[string]bool{}
	for _, w := range waves {
		complete := true
		for _, t := range w {
			open[t] = true
			complete = complete && done(t)
		}
		if !complete {
			break
		}
	}
	return open
}

// rollingSitesOpen returns the targets of the job that may be sent
// generation v now under order "rolling-sites".
func (j *job) rollingSitesOpen(v uint64) map[string]bool {
	waves := siteWaves(j.cfg.Targets, j.a.cfgSnapshot().SiteOf)
	return openWaves(waves, func(name string) bool {
		t := j.targets[name]
		return t != nil && t.result != nil && t.result.Version == v && (t.result.State == "good" || t.result.State == ResultHeld)
	})
}
