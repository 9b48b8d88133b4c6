// Package delta is pbxsync's Delta & Compression Analyzer: it encodes a new
// version of a file (the target) as few bytes as it can for a receiver that
// holds an older version (the base), and applies such encodings safely.
//
// # Two situations
//
// The sender usually knows by hash which version the receiver has, since
// both keep known-good generations. Then it encodes against that base
// directly, with no round trip: Encode tries a block match against a
// signature of the base it computes itself (128-byte blocks, copies then
// extended byte by byte into the literals), zstd with the base as a raw
// dictionary (like zstd --patch-from) for files up to DictMaxSize, and
// plain zstd, and writes the smallest.
//
// When the sender does not hold the receiver's base, the receiver sends a
// Signature (WriteSignature: a rolling weak checksum and a truncated
// xxh3-128 per block of √n bytes, 2·√n for text, much as rsync does) and
// the sender answers with Diff.
//
// The receiver applies either with Patch, which checks the base and the
// result against the BLAKE3-256 hashes in the header, or with ReadHeader
// and Apply when it wants to see the header (to find the base by hash)
// before it opens anything.
//
//	// sender, holding the base generation:
//	res, err := delta.Encode(ctx, conn, &delta.File{R: baseFile, Size: baseSize, Hash: baseHash},
//		delta.File{R: newFile, Size: newSize, Hash: newHash}, nil)
//	// receiver:
//	hdr, err := delta.Patch(ctx, stagingFile, &delta.File{R: baseFile, Size: baseSize, Hash: baseHash},
//		conn, &delta.PatchOptions{MaxSize: limit})
//	// rename stagingFile into place only if err == nil.
//
// Everything streams: signatures, diffs and patches of a 1 GiB file run in
// a few tens of MiB. Only KindDictZstd holds base and target in memory,
// which is why it is limited to DictMaxSize (4 MiB by default).
//
// # Delta format (version 1)
//
// All integers are unsigned LEB128 varints unless stated; hashes are
// BLAKE3-256 (index.Hash).
//
//	"PBXD"         4 bytes magic
//	version        1 byte, 1
//	kind           1 byte: 1 raw, 2 zstd, 3 dict-zstd, 4 blocks, 5 blocks-zstd
//	flags          1 byte, 0 (others are refused)
//	result size    varint
//	result hash    32 bytes
//	base size      varint    } only for kinds 3, 4, 5
//	base hash      32 bytes  }
//	payload size   varint, at most 2 × result size + 1 MiB
//	header check   4 bytes: low 32 bits of xxh3-64 of the header bytes
//	               before it, little-endian
//	payload        payload-size bytes, by kind:
//	  raw          the result
//	  zstd         a zstd stream of the result (window ≤ 8 MiB)
//	  dict-zstd    a zstd frame of the result made with the base as raw
//	               dictionary (dictionary ID 0)
//	  blocks       an op stream (below)
//	  blocks-zstd  a zstd stream (window ≤ 8 MiB) of an op stream
//
// The op stream is a sequence of ops ending with END:
//
//	0x01 COPY     svarint(offset − end of the previous copy), varint(length)
//	0x02 LITERAL  varint(length), length bytes
//	0x00 END
//
// The decoder bounds every length and offset before use: copies lie within
// the base and lengths are non-zero; no op may write past the result size;
// the payload must be consumed exactly; the result must have the header's
// size and hash. Sizes beyond the caller's limits are refused before any
// output.
//
// # Signature format (version 1)
//
//	"PBXS"         4 bytes magic
//	version        1 byte, 1
//	flags          1 byte, 0
//	strong length  1 byte, 2..16: bytes of xxh3-128 (big-endian) kept per block
//	block size     varint, 16..1 MiB
//	base size      varint
//	header check   4 bytes: low 32 bits of xxh3-64 of the header before it
//	blocks         ⌈base size / block size⌉ × (weak uint32 LE, strong)
//	base hash      32 bytes
//	checksum       8 bytes: xxh3-64 of everything before it, LE
//
// The weak checksum is the top 32 bits of a polynomial rolling hash mod
// 2^64 over the block (see rolling.go); the last block may be short.
//
// # Errors
//
// Decoders return ErrCorrupt, ErrBaseMismatch, ErrTooLarge or
// ErrUnsupported (wrapped with context; test with errors.Is). I/O errors of
// the caller's readers and writers are returned as such.
package delta
