// Package backup reads and writes pbxsync backup archives: one
// self-contained .tar.zst file holding one generation of one job.
//
// The tar stream, compressed with zstd (with its frame checksum), holds in
// this order:
//
//	pbxsync-backup.json   the manifest (Manifest): job, type, node,
//	                      generation, and every item with its BLAKE3 hash
//	data/PATH             the content of each file item, in manifest order
//	pbxsync-backup.sum    the BLAKE3 hash of the manifest's bytes, in hex
//
// and after the zstd frame a zstd skippable frame with the BLAKE3 hash of
// every byte before it (`zstd -d | tar x` unpacks an archive by hand).
//
// A files job's items are its files and directories; a postgres job's one
// item, "rows.jsonl", is every row of the listed tables as a snapshot
// changeset (hostmon.Changeset).
//
// Read trusts nothing in an archive: it bounds every length, validates
// every path, checks each file's content against the manifest's hash and
// size, the manifest against the trailing sum, and that nothing is missing,
// repeated or extra. A damaged or truncated archive is an error, and the
// caller acts only after Read returned nil. WriteFile writes an archive to
// a temporary file beside its destination, reads it back with Read, and
// only then renames it into place.
package backup
