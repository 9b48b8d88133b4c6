// Package core is the pure per-job state machine of the Synchronization
// Controller, in the style of etcd's raft: a Machine takes events (a local
// scan, a peer's index, the outcome of an apply, a peer coming up, a tick
// carrying the time) through Step and returns a Ready that says what to do
// — messages to send, content to fetch, the items to apply, conflict
// records to write, index entries to persist. It does no I/O and reads no
// clock: the same events always give the same Ready, so the protocol is
// tested as tables of events (machine_test.go) without sockets or sleeps.
//
// The package lives under syncer because it is the Synchronization
// Controller's decision logic (DESIGN.md puts conflict handling there), and
// apart from it because it must import nothing that does I/O: only
// internal/index. The loops that carry its decisions out are in syncer
// (mesh.go for mesh jobs; source.go, target.go, pushtarget.go for push).
//
// Push is the other policy (push_*.go): pure functions over what a source
// knows of each target (Target, RowsTarget: Step an event, get the new
// state and its Outcome), a source's round over its targets in the job's
// order (Source.Round → SourceReady: which announcement goes to whom, who
// waits for its Asterisk), a target's verdict on an announcement (Admit)
// and on a failed generation (Judge). The loops that keep that state and
// carry the decisions out are syncer's source.go, target.go, pushtarget.go
// and pg*.go. Version vectors are mesh's alone: push orders generations by
// the source's numbers.
//
// Mesh is a policy of per-item version vectors: a local
// change bumps this node's counter, a received version that dominates is
// applied, a dominated one ignored, a concurrent one resolved by the job's
// conflict policy (resolve.go) identically on every member without any
// further message; the loser becomes a conflict record, never dropped.
package core
