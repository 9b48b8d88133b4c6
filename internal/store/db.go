package store

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"time"
	"unicode/utf8"

	"github.com/zeebo/xxh3"
	bolt "go.etcd.io/bbolt"

	"pbxsync/internal/index"
)

// The metadata database (format 2) is one bbolt file, meta.db. Keys are
// bytes; numbers are 8-byte big-endian so that cursors walk them in order.
//
//	meta     format → "2"
//	blobs    hash (32 bytes) → zstd frame of a small blob (≤ SmallBlob bytes
//	         compressed), written before pack files; moved into packs by Open
//	packed   hash → location of a small blob's record in a pack (see pack.go)
//	packs    pack number → committed size, dead bytes
//	refs     hash → reference count (uint64): items of the jobs' current
//	         indexes, old items kept by change records, extras
//	unref    hash → unix nanoseconds: blobs no one refers to any more
//	         (released, or put again while unreferenced), GC's candidates
//	fresh    sequence → time and hashes of a batch of blobs new to the
//	         store, GC's candidates while refs lacks them (see fresh.go)
//	jobs/<job>/items        path → item: the job's newest generation, once
//	jobs/<job>/gens         gen → meta (JSON)
//	jobs/<job>/changes/<gen> path → the item gen's predecessor held there
//	                        (or "none"): what gen changed and what it replaced
//	jobs/<job>/scan         path → the syncer's scan state of the path (opaque)
//	jobs/<job>/journal.parts/<id>/<i>/part  part i of a large journal, in
//	                        a bucket of its own (see bktJournalParts; an
//	                        earlier version kept it as the value <id>/<i>)
//	jobs/<job>  keys        next, count (of items), state, journal, extras,
//	                        recording (a generation recorded in chunks:
//	                        see recordChunkChanges)
var (
	bktMeta    = []byte("meta")
	bktBlobs   = []byte("blobs")
	bktRefs    = []byte("refs")
	bktUnref   = []byte("unref")
	bktJobs    = []byte("jobs")
	bktItems   = []byte("items")
	bktGens    = []byte("gens")
	bktChanges = []byte("changes")
	bktScan    = []byte("scan")
	keyFormat  = []byte("format")
	keyNext    = []byte("next")
	keyCount   = []byte("count")
	keyState   = []byte("state")
	keyJournal = []byte("journal")
	keyExtras  = []byte("extras")
)

// fillPercent is how full bbolt fills a page when it splits one. Its
// default (0.5) suits random inserts; the store mostly inserts many keys
// in order in one transaction (a first generation, a batch of blobs), where
// half-full pages would double the file.
const fillPercent = 0.9

// randomFillPercent is bbolt's default, for bucket packed: every flush
// inserts a few keys at random places of nearly every leaf, and leaves
// split at 90 % were left nearly full and nearly empty (41 % full on
// average at 84,000 blobs, against 68 % at 0.5), so a flush rewrote 17 %
// more pages, and the bucket was 70 % larger.
const randomFillPercent = bolt.DefaultFillPercent

// formatVersion is the value of meta/format.
const formatVersion = "3"

// formatVersion2 is the format before the locations of small blobs were
// split into a main and a recent bucket (locations.go): Open upgrades it.
// A program that reads format 2 refuses a store of format 3 (it would
// miss the locations in recent).
const formatVersion2 = "2"

// dbName is the metadata database's file name under the store directory.
const dbName = "meta.db"

func u64key(n uint64) []byte {
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], n)
	return b[:]
}

func u64val(b []byte) uint64 {
	if len(b) != 8 {
		return 0
	}
	return binary.BigEndian.Uint64(b)
}

// openDB opens (creating when writable) the metadata database.
func openDB(path string, readOnly bool, timeout time.Duration) (*bolt.DB, error) {
	db, err := bolt.Open(path, 0o600, &bolt.Options{
		ReadOnly:     readOnly,
		Timeout:      timeout,
		FreelistType: bolt.FreelistMapType,
	})
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	return db, nil
}

// initDB creates the top-level buckets and the format key.
func initDB(db *bolt.DB) error {
	return db.Update(func(tx *bolt.Tx) error {
		for _, b := range [][]byte{bktMeta, bktBlobs, bktPacked, bktPacks, bktRefs, bktUnref, bktFresh, bktJobs} {
			if _, err := tx.CreateBucketIfNotExists(b); err != nil {
				return err
			}
		}
		m := tx.Bucket(bktMeta)
		switch v := m.Get(keyFormat); {
		case v == nil, string(v) == formatVersion2:
			// format 2 lacks packed.recent only, which Open adds
			return m.Put(keyFormat, []byte(formatVersion))
		case string(v) != formatVersion:
			return fmt.Errorf("%s holds format %q, this program reads %q", dbName, v, formatVersion)
		}
		return nil
	})
}

// jobBucket returns the bucket of job, nil when it has none (or, with
// create, creates it with its sub-buckets).
func jobBucket(tx *bolt.Tx, job string, create bool) (*bolt.Bucket, error) {
	if _, err := jobDirName(job); err != nil {
		return nil, err
	}
	jobs := tx.Bucket(bktJobs)
	if jobs == nil {
		return nil, fmt.Errorf("%w: no jobs bucket", ErrCorrupt)
	}
	if !create {
		return jobs.Bucket([]byte(job)), nil
	}
	b, err := jobs.CreateBucketIfNotExists([]byte(job))
	if err != nil {
		return nil, err
	}
	for _, n := range [][]byte{bktItems, bktGens, bktChanges, bktScan} {
		if _, err := b.CreateBucketIfNotExists(n); err != nil {
			return nil, err
		}
	}
	return b, nil
}

// Item encoding (a value of items, and after a 1 byte of a change record):
//
//	kind (1) flags (1: 1 deleted, 2 hash follows) uvarint mode
//	varint size, varint mtime, [32 hash], uvarint counters,
//	each: uvarint len, node, uvarint value
const (
	itemDeleted = 1
	itemHash    = 2
)

func appendItem(b []byte, it *index.Item) []byte {
	var flags byte
	if it.Deleted {
		flags |= itemDeleted
	}
	if !it.Hash.IsZero() {
		flags |= itemHash
	}
	b = append(b, byte(it.Kind), flags)
	b = binary.AppendUvarint(b, uint64(index.UnixMode(it.Mode)))
	b = binary.AppendVarint(b, it.Size)
	b = binary.AppendVarint(b, it.MTime)
	if flags&itemHash != 0 {
		b = append(b, it.Hash[:]...)
	}
	b = binary.AppendUvarint(b, uint64(len(it.Version)))
	for _, c := range it.Version {
		b = binary.AppendUvarint(b, uint64(len(c.Node)))
		b = append(b, c.Node...)
		b = binary.AppendUvarint(b, c.Value)
	}
	return b
}

// decodeItem checks and decodes a sealed item of path; every error wraps
// ErrCorrupt.
func decodeItem(path string, v []byte) (index.Item, error) {
	return decodeItemShared(path, v, nil)
}

// decodeItemShared is decodeItem that takes the item's version vector
// from vs when an equal one was decoded before (and interns it there
// otherwise): the items of a whole index read at once share their
// vectors. vs may be nil.
func decodeItemShared(path string, v []byte, vs *index.Vectors) (index.Item, error) {
	b, why := unsealed([]byte(path), v)
	if why != "" {
		return index.Item{}, fmt.Errorf("%w: item %q: %s", ErrCorrupt, path, why)
	}
	it := index.Item{Path: path}
	bad := func(why string) (index.Item, error) {
		return index.Item{}, fmt.Errorf("%w: item %q: %s", ErrCorrupt, path, why)
	}
	if len(b) < 2 {
		return bad("short record")
	}
	it.Kind, b = index.Kind(b[0]), b[1:]
	flags := b[0]
	b = b[1:]
	it.Deleted = flags&itemDeleted != 0
	mode, n := binary.Uvarint(b)
	if n <= 0 || mode > 0xffffffff {
		return bad("mode")
	}
	it.Mode, b = index.FileMode(uint32(mode)), b[n:]
	if it.Size, n = binary.Varint(b); n <= 0 {
		return bad("size")
	}
	b = b[n:]
	if it.MTime, n = binary.Varint(b); n <= 0 {
		return bad("mtime")
	}
	b = b[n:]
	if flags&itemHash != 0 {
		if len(b) < 32 {
			return bad("hash")
		}
		copy(it.Hash[:], b)
		b = b[32:]
	}
	// the vector is the rest of the record (see appendItem): its bytes
	// are its key in vs, the encoding Vectors.Intern uses
	key := b
	cnt, n := binary.Uvarint(b)
	if n <= 0 || cnt > uint64(len(b)) {
		return bad("version vector")
	}
	b = b[n:]
	if shared, ok := vs.Get(key); ok && cnt > 0 {
		it.Version = shared
	} else {
		if cnt > 0 {
			it.Version = make(index.Vector, 0, cnt)
		}
		for range cnt {
			l, n := binary.Uvarint(b)
			if n <= 0 || l > uint64(len(b)-n) {
				return bad("version vector node")
			}
			node := string(b[n : n+int(l)])
			b = b[n+int(l):]
			v, n := binary.Uvarint(b)
			if n <= 0 {
				return bad("version vector value")
			}
			b = b[n:]
			it.Version = append(it.Version, index.Counter{Node: node, Value: v})
		}
		if len(b) != 0 {
			return bad("trailing bytes")
		}
		if cnt > 0 {
			vs.Put(key, it.Version)
		}
	}
	if err := validateItem(&it); err != nil {
		return index.Item{}, fmt.Errorf("%w: %v", ErrCorrupt, err)
	}
	return it, nil
}

// validateItem checks one item of an index, on write and on read.
func validateItem(it *index.Item) error {
	if err := index.ValidatePath(it.Path); err != nil {
		return err
	}
	switch it.Kind {
	case index.KindFile:
		if it.Size < 0 {
			return fmt.Errorf("item %q: negative size", it.Path)
		}
	case index.KindDir:
	default:
		return fmt.Errorf("item %q: unknown kind %d", it.Path, it.Kind)
	}
	if it.Mode&^index.ModeBits != 0 {
		return fmt.Errorf("item %q: mode %v has more than permission, setuid, setgid and sticky bits", it.Path, it.Mode)
	}
	for _, c := range it.Version {
		if c.Node == "" || len(c.Node) > maxOriginLen || !utf8.ValidString(c.Node) {
			return fmt.Errorf("item %q: bad node in version vector", it.Path)
		}
	}
	return nil
}

// liveFile reports whether it holds content the store must keep.
func liveFile(it *index.Item) bool {
	return it.Kind == index.KindFile && !it.Deleted && !it.Hash.IsZero()
}

// ref adds delta to the reference count of h. A count reaching zero moves
// h to unref (a GC candidate from now on).
func ref(tx *bolt.Tx, h index.Hash, delta int64) error {
	refs := tx.Bucket(bktRefs)
	n := int64(u64val(refs.Get(h[:])))
	n += delta
	switch {
	case n < 0:
		return fmt.Errorf("%w: reference count of blob %s below zero", ErrCorrupt, h)
	case n == 0:
		if err := refs.Delete(h[:]); err != nil {
			return err
		}
		return tx.Bucket(bktUnref).Put(h[:], u64key(uint64(time.Now().UnixNano())))
	}
	if err := refs.Put(h[:], u64key(uint64(n))); err != nil {
		return err
	}
	if delta > 0 {
		return tx.Bucket(bktUnref).Delete(h[:])
	}
	return nil
}

// refSorted applies the reference count changes of deltas (see ref; as
// refDeltas.sorted gives them) in the order of their keys (one transaction's puts in random order cost
// O(n) each in bbolt: see recordTx). A net change of zero leaves a count
// as it was.
func refSorted(tx *bolt.Tx, deltas []refDelta) error {
	for _, x := range deltas {
		if err := ref(tx, x.h, x.d); err != nil {
			return err
		}
	}
	return nil
}

// sortedHashes returns the keys of m in byte order.
func sortedHashes[V any](m map[index.Hash]V) []index.Hash {
	hs := make([]index.Hash, 0, len(m))
	for h := range m {
		hs = append(hs, h)
	}
	slices.SortFunc(hs, compareHashes)
	return hs
}

// compareHashes orders hashes by their bytes (bbolt's key order).
func compareHashes(a, b index.Hash) int { return bytes.Compare(a[:], b[:]) }

// fileExists reports whether path is a regular file.
func fileExists(path string) bool {
	st, err := os.Stat(path)
	return err == nil && st.Mode().IsRegular()
}

// removeIfExists removes path; a missing path is not an error.
func removeIfExists(path string) error {
	if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	return nil
}

func (s *Store) dbPath() string { return filepath.Join(s.dir, dbName) }

// Every metadata value carries a checksum (bbolt's pages have none): the
// payload followed by the XXH3-64 of the key and the payload,
// little-endian. A flipped bit or a value under the wrong key is an error
// wrapping ErrCorrupt, never a wrong value.
func seal(key, payload []byte) []byte {
	out := make([]byte, len(payload), len(payload)+8)
	copy(out, payload)
	return binary.LittleEndian.AppendUint64(out, sealSum(key, payload))
}

func sealSum(key, payload []byte) uint64 {
	h := xxh3.New()
	var n [binary.MaxVarintLen64]byte
	_, _ = h.Write(n[:binary.PutUvarint(n[:], uint64(len(key)))])
	_, _ = h.Write(key)
	_, _ = h.Write(payload)
	return h.Sum64()
}

// unseal checks v's checksum and returns its payload (sharing v's memory).
func unseal(what string, key, v []byte) ([]byte, error) {
	p, why := unsealed(key, v)
	if why != "" {
		return nil, fmt.Errorf("%w: %s: %s", ErrCorrupt, what, why)
	}
	return p, nil
}

// unsealed is unseal with the reason a value is damaged as a string, for
// callers that read many values: they name the value only when it is
// damaged (a name made for every item of a 100,000-file index took a
// tenth of reading it back).
func unsealed(key, v []byte) (payload []byte, why string) {
	if len(v) < 8 {
		return nil, "short value"
	}
	p := v[:len(v)-8]
	if binary.LittleEndian.Uint64(v[len(v)-8:]) != sealSum(key, p) {
		return nil, "checksum mismatch (damaged database page)"
	}
	return p, ""
}

// sealItem encodes and seals it (under its path).
func sealItem(it *index.Item) []byte {
	return seal([]byte(it.Path), appendItem(nil, it))
}

// MarshalItem returns the store's compact binary encoding of it (no
// checksum), for callers that keep items in their own values (the
// syncer's scan state).
func MarshalItem(it *index.Item) []byte { return appendItem(nil, it) }

// UnmarshalItem decodes what MarshalItem returned for the item at path and
// validates it; every error wraps ErrCorrupt.
func UnmarshalItem(path string, b []byte) (index.Item, error) {
	return decodeItem(path, seal([]byte(path), b))
}

// UnmarshalItemShared is UnmarshalItem taking the item's version vector
// from vs when an equal one was decoded before (see index.Vectors): for
// decoding many items at once. vs may be nil.
func UnmarshalItemShared(path string, b []byte, vs *index.Vectors) (index.Item, error) {
	return decodeItemShared(path, seal([]byte(path), b), vs)
}
