package core

import "pbxsync/internal/index"

// Ready is what one Step asks of the loop that carries it out, in this
// order: put the content of Store into the store (it is in the tree now),
// persist Persist, carry out Apply (then Step an Applied), send Send.
type Ready struct {
	Store   []index.Item // local versions whose content is to be kept in the store
	Persist []index.Item // entries of the mesh index that changed (tombstones included)
	Apply   *Apply       // a peer's versions to take into the tree, and conflict records
	Records []Conflict   // versions this member's checks rejected, to record (after Persist)
	Send    []Message    // index messages to members
}

// Empty reports whether r asks for nothing.
func (r Ready) Empty() bool {
	return len(r.Store) == 0 && len(r.Persist) == 0 && r.Apply == nil && len(r.Records) == 0 && len(r.Send) == 0
}

// Message is this node's whole mesh index for one member.
type Message struct {
	To    string
	Items []index.Item // sorted by path, tombstones included
}

// Apply is a plan taken from a peer's index: fetch the content of the live
// items of Items and Keep from Peer (what the store lacks), make the tree
// hold Items (write the live ones, remove the deleted ones), write Records,
// then report Applied{ID}. Only then does the machine take the new
// versions into its index.
type Apply struct {
	ID      uint64
	Peer    string
	Items   []index.Item // to write (live) or remove (Deleted) in the tree
	Keep    []index.Item // losing versions of Peer to keep in the store for Records
	Records []Conflict
}

// Side is one version of a conflict.
type Side struct {
	Node       string     // the author (see Author)
	Generation uint64     // the winner: this node's generation that holds it (set by the loop)
	Hash       index.Hash // zero for a deletion
	Size       int64
	Deleted    bool
	MTime      int64
	Version    index.Vector
}

// Conflict is the record of two concurrent versions of a path: the winner
// is live, the loser kept in the store.
type Conflict struct {
	ID     string // the same on every member that sees the conflict
	Path   string
	Time   int64 // when this member resolved it
	Winner Side
	Loser  Side
	Reason string // a rejection: why this member's checks refused the loser
}
