package syncer

import (
	"errors"
	"fmt"

	"pbxsync/internal/config"
	"pbxsync/internal/wire"
)

// Allow implements remotemon.Gatekeeper: it decides, before the body of a
// message is decoded, whether peer may send a message of type t naming job
// at all. Announcements come only from a job's source to this node as its
// target; results, postgres have-messages and content requests only from
// the job's targets to this node as its source; in a mesh job, index
// announcements and content requests from its members. Everything else that names
// a job is refused unread, so that a pinned peer without a role in a job
// cannot make this node decode (and hold) what it sends for it.
func (a *Agent) Allow(peer string, t wire.Type, job string) error {
	switch t {
	case wire.TypeHello, wire.TypePing, wire.TypePong, wire.TypeState:
		return nil
	case wire.TypeAnnounce, wire.TypeRowsAnnounce:
		j := a.job(job)
		if j == nil {
			return fmt.Errorf("no job %q on this node", job)
		}
		if t == wire.TypeAnnounce && j.isMeshMember(peer) {
			return nil
		}
		if j.cfg.Mode == config.ModeMesh || j.isSource || j.cfg.Source != peer {
			return fmt.Errorf("job %q: the config does not name %s as its source", job, peer)
		}
		return nil
	case wire.TypeResult, wire.TypeRowsHave, wire.TypeGet:
		j := a.job(job)
		if j == nil {
			return fmt.Errorf("no job %q on this node", job)
		}
		if t == wire.TypeGet && (j.isMeshMember(peer) || j.relaysFor(peer)) {
			return nil
		}
		if j.cfg.Mode == config.ModeMesh || !j.isSource || !contains(j.cfg.Targets, peer) {
			return fmt.Errorf("job %q: %s is not a target of it here (or this node is not its source)", job, peer)
		}
		return nil
	case wire.TypeOffer, wire.TypeWake:
		j := a.job(job)
		if j == nil {
			return fmt.Errorf("no job %q on this node", job)
		}
		if j.cfg.Mode != config.ModePush || j.kind != nil || j.isSource || j.cfg.Source != peer {
			return fmt.Errorf("job %q: the config does not name %s as the source of this files job", job, peer)
		}
		return nil
	case wire.TypeRelay:
		j := a.job(job)
		if j == nil {
			return fmt.Errorf("no job %q on this node", job)
		}
		return j.allowRelay(peer)
	}
	return errors.New(t.String() + " is not expected from a peer")
}
