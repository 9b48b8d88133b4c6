// Package identity owns a node's cryptographic identity: an Ed25519 key and
// a self-signed certificate kept in data_dir, and the node ID derived from
// the public key.
//
// A node ID is the SHA-256 of the Ed25519 public key, written in base32 in
// four groups of 13 characters, each followed by a Luhn mod 32 check
// character, joined by dashes (59 characters). Peers pin each other by this
// ID; a typo is caught by the check characters before any connection.
package identity
