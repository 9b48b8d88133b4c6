// Package index holds pbxsync's data model: items (one file or one row), their
// content hashes and version vectors, and indexes (the set of items of a job
// on one host).
//
// Every package that exchanges or stores items speaks these types: hostmon
// builds indexes by scanning, syncer plans on them, internal/wire carries them
// and internal/store keeps them per generation. The package does no I/O
// beyond hashing a reader.
package index
