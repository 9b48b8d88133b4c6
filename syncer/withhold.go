package syncer

import (
	"time"

	"pbxsync/internal/wire"
)

// A relay can stay connected and acknowledge a generation for itself yet
// never hand it on to its site. The origin notices it: a target it sent a
// version through a relay answers nothing for it within the relay
// patience, while the relay itself answered for that version. The relay is
// then passed over (as unfit, see siteTarget) for a while, and the targets
// behind it are sent the version again through their site's next relay.

// defaultRelayPatience is how long the targets behind a relay may take to
// answer a version the relay answered for (Options.RelayPatience). A far
// target working on a long generation answers "applying" every second.
const defaultRelayPatience = 10 * announceRepeat

// relaySend is the origin's note of one target sent a version through a
// relay: when it was first sent that version through that relay.
type relaySend struct {
	Relay   string
	Version uint64
	At      time.Time
}

// withholding returns the relays that withhold: those through which some
// target (not the relay itself) was first sent a version more than
// patience before now, that target has not answered for it, and the relay
// has. answered(name, v) reports whether target name answered for version
// v. It is pure.
func withholding(now time.Time, patience time.Duration, sends map[string]relaySend, answered func(string, uint64) bool) map[string]bool {
	out := map[string]bool{}
	for name, s := range sends {
		if s.Relay == "" || s.Relay == name || now.Sub(s.At) <= patience {
			continue
		}
		if !answered(name, s.Version) && answered(s.Relay, s.Version) {
			out[s.Relay] = true
		}
	}
	return out
}

// noteRelaySend notes that target name is sent msg through relay, unless
// it was sent that version through that relay before.
func (j *job) noteRelaySend(name, relay string, msg wire.Message) {
	f := &j.fed
	v, _ := relayedContent(msg)
	if s, ok := f.sends[name]; ok && s.Relay == relay && s.Version == v {
		return
	}
	if f.sends == nil {
		f.sends = map[string]relaySend{}
	}
	f.sends[name] = relaySend{Relay: relay, Version: v, At: time.Now()}
}

// passOverWithholding marks the relays that withhold (withholding) as
// passed over for ten times the patience and makes the targets sent
// through them due at once: this announce pass routes them through their
// site's next relay.
func (j *job) passOverWithholding() {
	f := &j.fed
	now := time.Now()
	for relay := range withholding(now, j.a.patience, f.sends, j.answered) {
		j.log.Warn("a relay answered a version but the targets behind it did not; passing it over", "relay", relay, "for", 10*j.a.patience)
		if f.suspect == nil {
			f.suspect = map[string]time.Time{}
		}
		f.suspect[relay] = now.Add(10 * j.a.patience)
		for name, s := range f.sends {
			if s.Relay == relay {
				delete(f.sends, name)
				j.dueNow(name)
			}
		}
	}
}

// answered reports whether target name answered for version v (a files
// target's result, progress included; a postgres target's result, or its
// database holds v or later).
func (j *job) answered(name string, v uint64) bool {
	if p, ok := j.kind.(*pgJob); ok {
		t := p.targets[name]
		return t != nil && ((t.Answer != nil && t.Answer.Version == v) || (t.Known && t.Have >= v))
	}
	t := j.targets[name]
	return t != nil && t.result != nil && t.result.Version == v
}

// dueNow makes the announcement to target name due at once.
func (j *job) dueNow(name string) {
	if p, ok := j.kind.(*pgJob); ok {
		if t := p.targets[name]; t != nil {
			t.SentAt = 0
		}
		return
	}
	if t := j.targets[name]; t != nil {
		t.sentAt = time.Time{}
	}
}
