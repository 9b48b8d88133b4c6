package remotemon

import (
	"net"
	"sort"
	"sync"
	"time"
)

// Bounds of the refused-handshake log.
const (
	// DefaultRefusalWindow is how long after a logged refusal further
	// refusals from the same host are only counted.
	DefaultRefusalWindow = time.Minute
	// maxRefusalHosts bounds the hosts tracked at once; refusals from
	// further hosts share one "other hosts" entry.
	maxRefusalHosts = 1024
	otherHosts      = "other hosts"
)

// refusals rate-limits the log lines of refused handshakes per remote host
// (the address without its port, so that an attacker changing ports counts
// as one): the first refusal of a window is logged in full, the rest are
// counted and reported in one summary line when the window ends. It is safe
// for concurrent use.
type refusals struct {
	window time.Duration
	max    int

	mu    sync.Mutex
	hosts map[string]*refusalEntry
}

type refusalEntry struct {
	start      time.Time // when the logged refusal of this window came
	suppressed int       // refusals counted, not logged, since start
	lastID     string    // the ID presented last, for the summary
}

// refusalSummary is one summary line: suppressed refusals from host in the
// window that began at since.
type refusalSummary struct {
	host       string
	since      time.Time
	suppressed int
	lastID     string
}

func newRefusals(window time.Duration) *refusals {
	if window <= 0 {
		window = DefaultRefusalWindow
	}
	return &refusals{window: window, max: maxRefusalHosts, hosts: map[string]*refusalEntry{}}
}

// hostOf returns the host part of a host:port address (the address itself
// when it has no port).
func hostOf(remote string) string {
	if h, _, err := net.SplitHostPort(remote); err == nil {
		return h
	}
	return remote
}

// note records one refusal from remote (host:port) at now. log says whether
// to log it in full; done is the summary of a window of this host that ended
// before now, to be logged first (zero suppressed: nothing to say).
func (r *refusals) note(remote, id string, now time.Time) (log bool, done refusalSummary) {
	host := hostOf(remote)
	r.mu.Lock()
	defer r.mu.Unlock()
	e, ok := r.hosts[host]
	if !ok && len(r.hosts) >= r.max {
		host = otherHosts
		e, ok = r.hosts[host]
	}
	if ok && now.Sub(e.start) < r.window {
		e.suppressed++
		e.lastID = id
		return false, refusalSummary{}
	}
	if ok {
		done = refusalSummary{host: host, since: e.start, suppressed: e.suppressed, lastID: e.lastID}
	}
	r.hosts[host] = &refusalEntry{start: now, lastID: id}
	return true, done
}

// flush ends every window older than the window length at now: it forgets
// those hosts and returns the summaries of the ones that had suppressed
// refusals, sorted by host.
func (r *refusals) flush(now time.Time) []refusalSummary {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []refusalSummary
	for host, e := range r.hosts {
		if now.Sub(e.start) < r.window {
			continue
		}
		if e.suppressed > 0 {
			out = append(out, refusalSummary{host: host, since: e.start, suppressed: e.suppressed, lastID: e.lastID})
		}
		delete(r.hosts, host)
	}
	sort.Slice(out, func(i, k int) bool { return out[i].host < out[k].host })
	return out
}

// refusedHandshake logs a refused handshake from remote, rate-limited per
// host: msg and attrs in full for the first of a window, else only counted.
func (m *Monitor) refusedHandshake(remote, id, msg string, attrs ...any) {
	logIt, done := m.refused.note(remote, id, time.Now())
	if done.suppressed > 0 {
		m.logRefusalSummary(done)
	}
	if logIt {
		m.log.Warn(msg, append([]any{"remote", remote}, attrs...)...)
	}
}

func (m *Monitor) logRefusalSummary(s refusalSummary) {
	m.log.Warn("refused handshakes not logged one by one", "remote_host", s.host, "suppressed", s.suppressed,
		"since", s.since.UTC().Format(time.RFC3339), "last_presented_id", s.lastID)
}

// refusalSummaries logs, once per window, how many refusals each host's
// window suppressed, until ctx is done.
func (m *Monitor) refusalSummaries(done <-chan struct{}) {
	t := time.NewTicker(m.refused.window)
	defer t.Stop()
	for {
		select {
		case <-done:
			return
		case now := <-t.C:
			for _, s := range m.refused.flush(now) {
				m.logRefusalSummary(s)
			}
		}
	}
}
