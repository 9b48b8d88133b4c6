package core

import "pbxsync/internal/index"

// Event is one input of a Machine. Times are Unix nanoseconds carried in
// the events: the machine reads no clock.
type Event interface{ isEvent() }

// LocalScan is the job's tree as scanned: every live file with its hash,
// size, mode and mtime (Version is ignored). A file that differs from the
// machine's entry is a local change; an entry the tree lacks is a local
// delete.
type LocalScan struct {
	Time int64
	Tree index.Index
}

// RemoteIndex is a member's whole mesh index as it sent it, tombstones
// included, already admitted by this node's filters.
type RemoteIndex struct {
	Time  int64
	Peer  string
	Items []index.Item
}

// Applied reports the outcome of the Apply of a Ready: Err is empty when
// the content was fetched, the tree changed and the records were written.
type Applied struct {
	ID  uint64
	Err string
}

// Rejected reports that the Apply of a Ready was carried out but failed
// this member's actions or checks, and the tree was rolled back: every
// version it brought into the tree is reverted on every member by a
// newer version of what this member held before (Reason says why).
type Rejected struct {
	ID     uint64
	Reason string
}

// PeerUp says a member is reachable (again): it is sent the index at once.
type PeerUp struct{ Peer string }

// PeersUp is PeerUp for several members at once (the job starts, a sync
// is asked for, the relay they were reached through went down): they are
// sent the index at once, as one index (the Messages share their Items),
// so that the members of a remote site get it in one envelope to their
// relay, the relay among its recipients: the relay takes it before it
// hands it on.
type PeersUp struct{ Peers []string }

// PeerDown says a member is gone: nothing is sent to it until it is up.
type PeerDown struct{ Peer string }

// Tick carries the time; a member not sent the index for Config.Resend is
// sent it again (lost messages and missed changes heal this way).
type Tick struct{ Time int64 }

func (LocalScan) isEvent()   {}
func (RemoteIndex) isEvent() {}
func (Applied) isEvent()     {}
func (Rejected) isEvent()    {}
func (PeerUp) isEvent()      {}
func (PeersUp) isEvent()     {}
func (PeerDown) isEvent()    {}
func (Tick) isEvent()        {}
