// Package store is a node's local store under data_dir: the content of the
// last `keep` generations of every job, content-addressed and
// zstd-compressed, plus the metadata of those generations, so that a
// rollback never needs the network. It also holds the syncer's per-job
// state (a small value plus a per-path scan state), intent journals and
// saved local edits / conflict copies.
//
// # Layout (format 2)
//
// Open(dir) owns everything under dir (the agent passes data_dir/store):
//
//	FORMAT                     "pbxsync-store 2": the layout version
//	lock                       flock'ed by the one writer process; holds its PID
//	meta.db                    the metadata database (bbolt), see db.go
//	tmp/                       blobs being written or pending (see below)
//	packs/000001.pack          small blobs (at most SmallBlob bytes
//	                           compressed), appended as records (hash, length,
//	                           XXH3, zstd frame) and read with pread; meta.db
//	                           holds their locations (see pack.go), in a
//	                           main and a recent bucket (locations.go:
//	                           meta.db's format 3; Open upgrades 2)
//	blobs/ab/abcdef…           a large blob (more than SmallBlob bytes
//	                           compressed): a zstd stream (single frame, XXH64
//	                           content checksum) of content whose BLAKE3-256
//	                           is abcdef…
//	corrupt/<hash>-<unixnano>  blobs found damaged, moved aside for inspection
//
// meta.db holds, per job, the newest generation's index once (items: path
// → item) and every generation as its meta and its change record: path →
// the item the previous generation held there (or none). Generation k is
// rebuilt by undoing, newest first, the records of the generations after
// k. The first generation of a job has no record. A meta holds at most
// 128 changed paths itself; a longer list (a first generation's: every
// path) is kept out of line, one value per path (changedlist.go), so that
// the meta values stay small and a one-file generation's commit does not
// rewrite a large one. Recording a generation
// writes only what it changed (AddGenerationChanges; AddGeneration
// compares a complete index with the stored one and writes the
// differences). Every value carries an XXH3 checksum over its key and
// payload, so a damaged page reads as an error wrapping ErrCorrupt, never
// as a wrong value; decoders validate every path with index.ValidatePath,
// and the same validation runs before a write.
//
// # Crash safety
//
// Metadata changes are bbolt transactions: a crash leaves the database as
// of the last commit (copy-on-write pages, one fdatasync per commit).
//
// A Put hashes the content while it compresses it; a small blob stays in
// memory, a large one in a file under tmp/ (written with O_DIRECT where
// the file system takes it, see internal/directio; not fsynced), and either is
// "pending": Has and Open see it at once. Whether the store holds it
// already is looked up when its batch is made durable, for the whole
// batch in hash order (not by every Put), and a blob it holds is then
// written nowhere a second time. The next metadata transaction,
// or a Put that finds 4 MiB or 64 files pending, makes the whole batch
// durable: the large files are fsynced in parallel, renamed to their hash
// names and their directories fsynced, the small ones appended to the
// active pack and the pack fsynced, then their locations are written in
// the same commit as the metadata change (Open cuts a pack back to its
// committed size, dropping what a crash left after it); a batch of at most
// 256 KiB of small blobs goes into meta.db instead (one fsync, not two), and
// the next GC moves them into a pack. So a recorded generation never
// lacks content, and a crash loses only blobs nothing recorded refers to
// (Open removes tmp/). A blob is named by its hash only after its content
// was hashed (for PutCompressed, decompressed and checked against the
// expected hash); Open's reader detects later damage at EOF (and the zstd
// frame checksum usually earlier) and reports ErrCorrupt naming the blob.
//
// # Concurrency
//
// A Store is safe for concurrent use by goroutines. Only one process may
// write: Open takes an exclusive flock on dir/lock (released by the kernel
// if the process dies). Other processes, such as `pbxsync history`, use
// OpenReadOnly, which never writes: it opens meta.db read-only when no
// writer holds it, else reads a private copy taken while at most one
// transaction committed and checked (bbolt's Tx.Check) before use, taken
// again when the writer committed since.
//
// # Garbage collection
//
// GC keeps, per job, the newest keep generations and the newest good one;
// extras live as long as the generation that was newest when they were
// saved; a journal keeps the blobs it names. Blobs carry reference counts
// (the items of the newest indexes, the old items of the kept change
// records, extras); one whose count drops to zero is listed as
// unreferenced with the time, and the blobs a flush made durable that
// nothing referred to are listed as one batch with the time (fresh.go:
// one key in put order, not one random key per blob); GC deletes those
// older than the grace period (WithGCGrace, default 15 minutes) that no
// journal and no Pin names and, for a batch, no reference count claims
// since; a Put of an existing unreferenced blob starts its grace period
// over. GC reads no index: its cost is that of
// what it deletes. An apply that can take longer than the grace period
// must Pin its blobs. A deleted small blob's record becomes dead bytes of
// its pack; a pack at least half dead is compacted (its live records
// appended to the active pack, then the pack removed).
//
// # Migration
//
// Open of a format-1 store (plain files: jobs/<job>/gen/<n>.meta and
// .index, next, extras, state, journal; every small blob a file) imports
// it: each generation oldest first in its own transaction (as its changes
// against its predecessor), then the small blobs. FORMAT says 2 only when
// it is done; a crash before makes the next Open start over from the
// format-1 files, which the migration does not change. They are removed
// after. A format-2 store written before bucket fresh gets it (empty) at
// Open; its unref rows are collected as before (see fresh.go, which also
// says what an older program does with a store that has batch rows).
// Small blobs that a store kept as values of meta.db (before pack
// files, and right after a format-1 import) are moved into packs by
// Open, a batch per commit; until then they are read from meta.db.
package store
