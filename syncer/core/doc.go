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
// internal/index. The loop that carries a Ready out is in syncer (mesh.go).
//
// Mesh is the policy built here today: per-item version vectors, a local
// change bumps this node's counter, a received version that dominates is
// applied, a dominated one ignored, a concurrent one resolved by the job's
// conflict policy (resolve.go) identically on every member without any
// further message; the loser becomes a conflict record, never dropped.
package core
