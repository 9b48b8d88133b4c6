// Package store is a node's local store under data_dir: the content of the
// last `keep` generations of every job, content-addressed and
// zstd-compressed, plus the metadata of those generations, so that a
// rollback never needs the network. It also holds the syncer's small
// per-job state, intent journals and saved local edits / conflict copies.
//
// It is plain files with fsync discipline, no database.
//
// # Layout
//
// Open(dir) owns everything under dir (the agent passes data_dir/store):
//
//	FORMAT                     "pbxsync-store 1": the layout version
//	lock                       flock'ed by the one writer process; holds its PID
//	tmp/                       temporary files of writes in progress
//	blobs/ab/abcdef…           one blob: a zstd stream (single frame, XXH64
//	                           content checksum) of content whose BLAKE3-256
//	                           is abcdef… (64 hex digits), in blobs/<first 2>/;
//	                           Open creates blobs/00 … blobs/ff up front
//	corrupt/<hash>-<unixnano>  blobs found damaged, moved aside for inspection
//	jobs/<job>/                one job; bytes of the name outside
//	                           [A-Za-z0-9_.-], and a leading '.', are %XX
//	jobs/<job>/gen/<n>.meta    generation n (20 digits): number, time, origin,
//	                           source version, changed paths, state, reason,
//	                           and the checksum of its index file
//	jobs/<job>/gen/<n>.index   generation n's items (written once)
//	jobs/<job>/next            the next generation number (never reused)
//	jobs/<job>/extras          saved local edits and conflict copies (Extra)
//	jobs/<job>/state           the syncer's state of the job (PutJobState)
//	jobs/<job>/journal         the intent journal of an apply in progress
//
// Every file under jobs/ is an envelope: a header line
// "pbxsync-<kind> 1 <BLAKE3 of the rest>" and a JSON body. The checksum
// turns a torn or damaged file into an error wrapping ErrCorrupt, never a
// wrong value, and decoders validate every path with index.ValidatePath.
// The same validation runs before a write, so the store never writes what
// it would refuse to read.
//
// # Crash safety
//
// Every file is written to tmp/ (same file system), fsynced, renamed into
// place and its directory fsynced before the call returns. A reader, in
// this process or another, sees a whole old file or a whole new one; a
// crash leaves at most files in tmp/, which the next Open removes.
// Creating a directory fsyncs its parent.
//
// A blob is renamed to its hash name only after its content was hashed
// (and, for PutCompressed, decompressed and checked against the expected
// hash), so a blob's name always matches its content unless the disk
// damages it later; Open's reader detects that at EOF (and the zstd frame
// checksum usually earlier) and reports ErrCorrupt naming the blob.
//
// AddGeneration writes jobs/<job>/next, then the index file, then the meta
// file: the meta file is what makes a generation exist. A crash in between
// skips a number (numbers are never reused) and may leave an orphan index
// file that GC removes. Blobs are durable before AddGeneration checks that
// every file item's blob is present, so a recorded generation never lacks
// content. GC deletes generation files and fsyncs the directory before it
// deletes any blob, so a generation never reappears after a crash without
// its blobs.
//
// # Concurrency
//
// A Store is safe for concurrent use by goroutines. Only one process may
// write: Open takes an exclusive flock on dir/lock (released by the kernel
// if the process dies). Other processes, such as `pbxsync history`, use
// OpenReadOnly, which takes no lock and never writes; they may see a
// generation disappear under GC (reported as ErrNotFound), never a
// partial file.
//
// # Garbage collection
//
// GC keeps, per job, the newest keep generations and the newest good one;
// extras live as long as the generation that was newest when they were
// saved; a journal keeps the blobs it names. Blobs referenced by none of
// these and by no Pin are deleted once older than the grace period
// (WithGCGrace, default 15 minutes); a Put of an existing blob refreshes
// its mtime. The grace period protects blobs put but not yet recorded in a
// generation; an apply that can take longer must Pin its blobs.
package store
