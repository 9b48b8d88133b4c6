package store

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"path/filepath"
	"strconv"
	"strings"
	"unicode/utf8"

	bolt "go.etcd.io/bbolt"

	"pbxsync/internal/index"
)

// Journal operations.
const (
	OpWrite  = "write"  // rename Staged over Path; Hash is the new content
	OpDelete = "delete" // remove the file Path (OldHash: what it held)
	OpMkdir  = "mkdir"  // create the directory Path
	OpRmdir  = "rmdir"  // remove the empty directory Path
	OpMeta   = "meta"   // set Mode and MTime of Path
)

// Journal is the intent journal of one apply: what the syncer is about to
// do to the job root, written (and fsynced) before the first change, and
// cleared after the last. At start-up a journal found on disk means a
// crash in between: the syncer rolls it forward or back.
type Journal struct {
	Job        string
	Generation uint64
	// Restore says the apply brings back content of an earlier, good
	// generation (a rollback, or the undoing of a failed apply), rather
	// than Generation's own content: it is rolled forward whatever state
	// Generation is in.
	Restore bool
	// Exchange says the apply's writes over a file swap the staged file
	// and the path in one step (renameat2 RENAME_EXCHANGE) and keep what
	// they displaced at the staged name until every rename is done: on
	// roll-forward, a staged file that does not hold the entry's Hash is
	// such a displaced file, and its entry is done.
	Exchange bool
	Entries  []JournalEntry
}

// JournalEntry is one step of an apply.
type JournalEntry struct {
	Path    string     // relative to the job root; index.ValidatePath
	Op      string     // OpWrite, OpDelete, OpMkdir, OpRmdir or OpMeta
	Staged  string     // OpWrite: absolute path of the staged file; OpDelete of an Exchange journal: where the file is set aside
	Hash    index.Hash // new content (OpWrite: required)
	OldHash index.Hash // content being replaced, zero if none
	Mode    uint32     // permission bits (and setuid/setgid/sticky)
	MTime   int64      // Unix nanoseconds
}

// validateJournal checks j as a journal of job; used on write and on read.
func validateJournal(job string, j *Journal) error {
	if j.Job != job {
		return fmt.Errorf("journal belongs to job %q", j.Job)
	}
	return validateEntries(j.Entries, 0, j.Exchange)
}

// validateEntries checks entries, the entries of a journal from number
// first on; exchange is the journal's Exchange.
func validateEntries(entries []JournalEntry, first int, exchange bool) error {
	for k, e := range entries {
		i := first + k
		bad := func(why string) error { return fmt.Errorf("entry %d (%q): %s", i, e.Path, why) }
		if err := index.ValidatePath(e.Path); err != nil {
			return fmt.Errorf("entry %d: %w", i, err)
		}
		switch e.Op {
		case OpWrite:
			if e.Staged == "" {
				return bad("write without a staged file")
			}
			if !cleanAbs(e.Staged) {
				return bad(fmt.Sprintf("staged path %q is not a clean absolute path", e.Staged))
			}
			if e.Hash.IsZero() {
				return bad("write without a content hash")
			}
		case OpDelete, OpMkdir, OpRmdir, OpMeta:
			if e.Op == OpDelete && exchange {
				if e.Staged != "" && !cleanAbs(e.Staged) {
					return bad(fmt.Sprintf("staged path %q is not a clean absolute path", e.Staged))
				}
				break
			}
			if e.Staged != "" {
				return bad(e.Op + " with a staged file")
			}
		default:
			return bad(fmt.Sprintf("unknown op %q", e.Op))
		}
		if e.Mode&^0o7777 != 0 {
			return bad(fmt.Sprintf("mode %#o has more than permission bits", e.Mode))
		}
	}
	return nil
}

// cleanAbs reports whether name is a clean absolute path of valid UTF-8
// and bounded length, without NUL.
func cleanAbs(name string) bool {
	return filepath.IsAbs(name) && filepath.Clean(name) == name &&
		!strings.ContainsRune(name, 0) && utf8.ValidString(name) && len(name) <= 4*index.MaxPathLen
}

// encodeJournal returns j as the sealed JSON value WriteJournal stores.
// It writes the JSON of diskJournal field by field into one buffer
// sized for the whole journal and seals it in place: json.Marshal of the
// whole journal built in a doubling buffer, copied, and seal copied again.
// (A journal of more than journalPartEntries entries is written in parts:
// see writeJournalParts.)
func encodeJournal(j *Journal) ([]byte, error) {
	if err := validateJournal(j.Job, j); err != nil {
		return nil, err
	}
	return encodeJournalHead(j, j.Entries, 0, 0)
}

// encodeJournalHead returns the sealed JSON of j's journal value with
// entries (none when the entries are in parts: then parts and id name
// them).
func encodeJournalHead(j *Journal, entries []JournalEntry, parts int, id uint64) ([]byte, error) {
	buf := bytes.NewBuffer(make([]byte, 0, 96+len(j.Job)+entriesSize(entries)+8))
	enc := json.NewEncoder(buf) // strings as json.Marshal writes them (and a newline)
	var scratch [2 * index.HashSize]byte
	buf.WriteString(`{"job":`)
	if err := enc.Encode(j.Job); err != nil {
		return nil, err
	}
	buf.WriteString(`,"generation":`)
	buf.Write(strconv.AppendUint(scratch[:0], j.Generation, 10))
	if j.Restore {
		buf.WriteString(`,"restore":true`)
	}
	if j.Exchange {
		buf.WriteString(`,"exchange":true`)
	}
	buf.WriteString(`,"entries":`)
	if err := appendEntries(buf, enc, entries); err != nil {
		return nil, err
	}
	if parts > 0 {
		buf.WriteString(`,"parts":`)
		buf.Write(strconv.AppendUint(scratch[:0], uint64(parts), 10))
		buf.WriteString(`,"parts_id":`)
		buf.Write(strconv.AppendUint(scratch[:0], id, 10))
	}
	buf.WriteByte('}')
	body := buf.Bytes()
	return binary.LittleEndian.AppendUint64(body, sealSum(keyJournal, body)), nil
}

// entriesSize is room for the JSON of entries: the strings with room for
// a few escapes, two hashes in hex, the keys and numbers.
func entriesSize(entries []JournalEntry) int {
	size := 2
	for i := range entries {
		n := len(entries[i].Path) + len(entries[i].Staged)
		size += n + n/8 + 2*2*index.HashSize + 160
	}
	return size
}

// appendEntries writes the JSON array of entries (diskJournalEntry's) to
// buf; enc encodes to buf.
func appendEntries(buf *bytes.Buffer, enc *json.Encoder, entries []JournalEntry) error {
	var scratch [2 * index.HashSize]byte
	str := func(key, v string) error {
		buf.WriteString(key)
		return enc.Encode(v)
	}
	hash := func(key string, h index.Hash) {
		buf.WriteString(key)
		buf.WriteByte('"')
		buf.Write(hex.AppendEncode(scratch[:0], h[:]))
		buf.WriteByte('"')
	}
	buf.WriteByte('[')
	for i := range entries {
		e := &entries[i]
		if i > 0 {
			buf.WriteByte(',')
		}
		// the fields of diskJournalEntry, in its order
		if err := str(`{"path":`, e.Path); err != nil {
			return err
		}
		if err := str(`,"op":`, e.Op); err != nil {
			return err
		}
		if e.Staged != "" {
			if err := str(`,"staged":`, e.Staged); err != nil {
				return err
			}
		}
		if !e.Hash.IsZero() {
			hash(`,"hash":`, e.Hash)
		}
		if !e.OldHash.IsZero() {
			hash(`,"old_hash":`, e.OldHash)
		}
		buf.WriteString(`,"mode":`)
		buf.Write(strconv.AppendUint(scratch[:0], uint64(e.Mode), 10))
		buf.WriteString(`,"mtime":`)
		buf.Write(strconv.AppendInt(scratch[:0], e.MTime, 10))
		buf.WriteByte('}')
	}
	buf.WriteByte(']')
	return nil
}

// decodeJournal parses and validates the journal of job held in one
// value (no parts). Every error wraps ErrCorrupt.
func decodeJournal(job string, v []byte) (*Journal, error) {
	d, err := decodeJournalHead(v)
	if err != nil {
		return nil, err
	}
	if d.Parts != 0 {
		return nil, fmt.Errorf("%w: journal: in %d parts", ErrCorrupt, d.Parts)
	}
	return journalFromDisk(job, &d.diskJournal)
}

// journalHead is the journal value: a diskJournal whose entries are in
// Parts values of the bucket PartsID under journal.parts when Parts > 0.
type journalHead struct {
	diskJournal
	Parts   int    `json:"parts"`
	PartsID uint64 `json:"parts_id"`
}

// maxJournalParts bounds the parts of one journal (a million entries in
// the smallest parts of the tests).
const maxJournalParts = 1 << 20

// decodeJournalHead parses the journal value. Every error wraps
// ErrCorrupt.
func decodeJournalHead(v []byte) (*journalHead, error) {
	b, err := unseal("journal", keyJournal, v)
	if err != nil {
		return nil, err
	}
	var d journalHead
	if err := json.Unmarshal(b, &d); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrCorrupt, err)
	}
	if d.Parts < 0 || d.Parts > maxJournalParts || d.Parts > 0 && (len(d.Entries) != 0 || d.PartsID == 0) {
		return nil, fmt.Errorf("%w: journal: %d parts (bucket %d) and %d entries", ErrCorrupt, d.Parts, d.PartsID, len(d.Entries))
	}
	return &d, nil
}

// partKey is the key a journal part is sealed under: the bucket's number
// and its own.
func partKey(id uint64, i int) []byte {
	return append(u64key(id), u64key(uint64(i))...)
}

// encodeJournalPart returns part i of the journal in bucket id: the
// sealed JSON array of entries.
func encodeJournalPart(id uint64, i int, entries []JournalEntry) ([]byte, error) {
	buf := bytes.NewBuffer(make([]byte, 0, entriesSize(entries)+8))
	if err := appendEntries(buf, json.NewEncoder(buf), entries); err != nil {
		return nil, err
	}
	body := buf.Bytes()
	return binary.LittleEndian.AppendUint64(body, sealSum(partKey(id, i), body)), nil
}

// decodeJournalPart parses part i of the journal in bucket id. Every
// error wraps ErrCorrupt; the entries are validated with the journal.
func decodeJournalPart(id uint64, i int, v []byte) ([]diskJournalEntry, error) {
	b, err := unseal(fmt.Sprintf("journal part %d", i), partKey(id, i), v)
	if err != nil {
		return nil, err
	}
	var es []diskJournalEntry
	if err := json.Unmarshal(b, &es); err != nil {
		return nil, fmt.Errorf("%w: journal part %d: %v", ErrCorrupt, i, err)
	}
	if len(es) == 0 {
		return nil, fmt.Errorf("%w: journal part %d: empty", ErrCorrupt, i)
	}
	return es, nil
}

func journalFromDisk(job string, d *diskJournal) (*Journal, error) {
	var err error
	j := &Journal{Job: d.Job, Generation: d.Generation, Restore: d.Restore, Exchange: d.Exchange, Entries: make([]JournalEntry, 0, len(d.Entries))}
	for i, de := range d.Entries {
		e := JournalEntry{Path: de.Path, Op: de.Op, Staged: de.Staged, Mode: de.Mode, MTime: de.MTime}
		if de.Hash != "" {
			if e.Hash, err = index.ParseHash(de.Hash); err != nil {
				return nil, fmt.Errorf("%w: entry %d: %v", ErrCorrupt, i, err)
			}
		}
		if de.OldHash != "" {
			if e.OldHash, err = index.ParseHash(de.OldHash); err != nil {
				return nil, fmt.Errorf("%w: entry %d: %v", ErrCorrupt, i, err)
			}
		}
		j.Entries = append(j.Entries, e)
	}
	if err := validateJournal(job, j); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrCorrupt, err)
	}
	return j, nil
}

// journalPartEntries: a journal of more entries is written in parts of
// this many, each in its own transaction, and then its head, which makes
// it exist (see writeJournalParts). An initial sync of 100,000 files had a
// journal of ~25 MB written as one value: that, bbolt's pages of it at
// the commit and the JSON around it were the target's largest allocations.
const journalPartEntries = 4096

// bktJournalParts holds the parts of large journals, a bucket per journal
// written and in it a bucket per part, holding the part under keyPart
// (jobs/<job>/journal.parts/<id>/<part>/part). A part in a bucket of its
// own is written once: parts that were values of the journal's bucket
// shared its leaves, up to four parts of ~0.9 MB a leaf, and the commit
// of each part rewrote the leaf it went into, copying the parts before it
// there through the map (the writing of a 100,000-entry journal moved
// ~3 times its size and held up to 15 MiB of meta.db mapped). Journals
// written as values in the journal's bucket still read back (readPart).
var (
	bktJournalParts = []byte("journal.parts")
	keyPart         = []byte("part")
)

// putPart writes part i of a journal in sub, the bucket of its parts.
func putPart(sub *bolt.Bucket, i int, b []byte) error {
	pb, err := sub.CreateBucketIfNotExists(u64key(uint64(i)))
	if err != nil {
		return err
	}
	pb.FillPercent = fillPercent
	return pb.Put(keyPart, b)
}

// readPart returns part i of a journal from sub, the bucket of its parts,
// or nil when it is missing: in a bucket of its own (putPart) or, as an
// earlier version wrote it, a value of sub.
func readPart(sub *bolt.Bucket, i int) []byte {
	k := u64key(uint64(i))
	if v := sub.Get(k); v != nil {
		return v
	}
	if pb := sub.Bucket(k); pb != nil {
		return pb.Get(keyPart)
	}
	return nil
}

// WithJournalParts writes journals of more than n entries in parts of n
// entries (n ≤ 0: journalPartEntries). Tests use a few dozen, so that
// small applies have journals in parts.
func WithJournalParts(n int) Option { return func(o *options) { o.journalPart = n } }

// journalPart returns the most entries of a journal in one value.
func (s *Store) journalPart() int {
	if s.opt.journalPart > 0 {
		return s.opt.journalPart
	}
	return journalPartEntries
}

// WriteJournal replaces the intent journal of job with j (j.Job must be
// job or empty) and returns only once it is durable (committed): the
// journal read back is the old one or j, never a mix, whenever the
// process stops. Blobs named by the entries' Hash and OldHash are kept by
// GC while the journal exists.
func (s *Store) WriteJournal(job string, j *Journal) error {
	return s.WriteJournalFunc(job, j, len(j.Entries), func(i int) JournalEntry { return j.Entries[i] })
}

// WriteJournalFunc is WriteJournal of a journal whose n entries are made
// when they are written, entry i by at(i), instead of held in j.Entries
// (ignored): a journal in parts (more than journalPartEntries entries)
// holds one part's entries at a time. An initial sync of 100,000 files
// held 12.8 MB of entries and 9.5 MB of staged names beside its plan.
func (s *Store) WriteJournalFunc(job string, j *Journal, n int, at func(i int) JournalEntry) error {
	if err := s.writable(); err != nil {
		return err
	}
	fail := func(err error) error {
		return fmt.Errorf("store: job %q generation %d: write journal: %w", job, j.Generation, err)
	}
	cp := *j
	cp.Entries = nil
	if cp.Job == "" {
		cp.Job = job
	}
	if cp.Job != job {
		return fail(fmt.Errorf("journal belongs to job %q", cp.Job))
	}
	if n > s.journalPart() {
		if err := s.writeJournalParts(&cp, n, at); err != nil {
			return fail(err)
		}
		return nil
	}
	cp.Entries = make([]JournalEntry, n)
	for i := range cp.Entries {
		cp.Entries[i] = at(i)
	}
	b, err := encodeJournal(&cp)
	if err != nil {
		return fail(err)
	}
	err = s.update(func(tx *bolt.Tx) error {
		jb, err := jobBucket(tx, job, true)
		if err != nil {
			return err
		}
		if err := jb.Put(keyJournal, b); err != nil {
			return err
		}
		return dropJournalParts(jb, 0)
	})
	if err != nil {
		return fail(err)
	}
	return nil
}

// writeJournalParts writes the n entries of j (entry i is at(i)) in parts
// into a new bucket of journal.parts, a transaction each, then (one more)
// the head naming them in place of the old journal, whose parts it drops.
// It makes and holds one part's entries at a time. A crash (or an entry
// that fails validation) before the head's commit leaves the old journal
// (or none) and parts no head names, which the next write or clear drops.
func (s *Store) writeJournalParts(j *Journal, n int, at func(i int) JournalEntry) error {
	if err := validateJournal(j.Job, j); err != nil {
		return err
	}
	var id uint64
	err := s.view(func(tx *bolt.Tx) error {
		jb, err := jobBucket(tx, j.Job, false)
		if err != nil || jb == nil {
			return err
		}
		if pb := jb.Bucket(bktJournalParts); pb != nil {
			k, _ := pb.Cursor().Last()
			id = u64val(k)
		}
		return nil
	})
	if err != nil {
		return err
	}
	id++
	size, parts := s.journalPart(), 0
	entries := make([]JournalEntry, 0, size)
	for lo := 0; lo < n; lo += size {
		entries = entries[:0]
		for i := lo; i < min(lo+size, n); i++ {
			entries = append(entries, at(i))
		}
		if err := validateEntries(entries, lo, j.Exchange); err != nil {
			return err
		}
		b, err := encodeJournalPart(id, parts, entries)
		if err != nil {
			return err
		}
		err = s.update(func(tx *bolt.Tx) error {
			jb, err := jobBucket(tx, j.Job, true)
			if err != nil {
				return err
			}
			pb, err := jb.CreateBucketIfNotExists(bktJournalParts)
			if err != nil {
				return err
			}
			sub, err := pb.CreateBucketIfNotExists(u64key(id))
			if err != nil {
				return err
			}
			sub.FillPercent = fillPercent
			return putPart(sub, parts, b)
		})
		if err != nil {
			return err
		}
		parts++
	}
	head, err := encodeJournalHead(j, nil, parts, id)
	if err != nil {
		return err
	}
	return s.update(func(tx *bolt.Tx) error {
		jb, err := jobBucket(tx, j.Job, true)
		if err != nil {
			return err
		}
		if err := jb.Put(keyJournal, head); err != nil {
			return err
		}
		return dropJournalParts(jb, id)
	})
}

// dropJournalParts deletes the part buckets of jb other than keep.
func dropJournalParts(jb *bolt.Bucket, keep uint64) error {
	pb := jb.Bucket(bktJournalParts)
	if pb == nil {
		return nil
	}
	var drop [][]byte
	if err := pb.ForEachBucket(func(k []byte) error {
		if u64val(k) != keep {
			drop = append(drop, bytes.Clone(k))
		}
		return nil
	}); err != nil {
		return err
	}
	for _, k := range drop {
		if err := pb.DeleteBucket(k); err != nil {
			return err
		}
	}
	if keep == 0 {
		return jb.DeleteBucket(bktJournalParts)
	}
	return nil
}

// ReadJournal returns the intent journal of job; ok is false when there is
// none. A damaged journal (bad JSON, a path that fails
// index.ValidatePath …) gives ok false and an error wrapping ErrCorrupt:
// the caller reports it, and treats the apply as not started or recovers
// from the generation metadata.
func (s *Store) ReadJournal(job string) (*Journal, bool, error) {
	var j *Journal
	err := s.view(func(tx *bolt.Tx) error {
		var err error
		j, err = readJournal(tx, job)
		return err
	})
	if err != nil {
		return nil, false, fmt.Errorf("store: job %q: read journal: %w", job, err)
	}
	return j, j != nil, nil
}

func readJournal(tx *bolt.Tx, job string) (*Journal, error) {
	jb, err := jobBucket(tx, job, false)
	if err != nil || jb == nil {
		return nil, err
	}
	b := jb.Get(keyJournal)
	if b == nil {
		return nil, nil
	}
	d, err := decodeJournalHead(b)
	if err != nil {
		return nil, err
	}
	if d.Parts > 0 {
		var sub *bolt.Bucket
		if pb := jb.Bucket(bktJournalParts); pb != nil {
			sub = pb.Bucket(u64key(d.PartsID))
		}
		if sub == nil {
			return nil, fmt.Errorf("%w: journal: the bucket of its parts is missing", ErrCorrupt)
		}
		for i := range d.Parts {
			v := readPart(sub, i)
			if v == nil {
				return nil, fmt.Errorf("%w: journal: part %d of %d missing", ErrCorrupt, i, d.Parts)
			}
			es, err := decodeJournalPart(d.PartsID, i, v)
			if err != nil {
				return nil, err
			}
			d.Entries = append(d.Entries, es...)
		}
	}
	return journalFromDisk(job, &d.diskJournal)
}

// ClearJournal removes the intent journal of job (durably); no journal is
// not an error.
func (s *Store) ClearJournal(job string) error {
	err := s.update(func(tx *bolt.Tx) error {
		jb, err := jobBucket(tx, job, false)
		if err != nil || jb == nil {
			return err
		}
		if err := jb.Delete(keyJournal); err != nil {
			return err
		}
		return dropJournalParts(jb, 0)
	})
	if err != nil {
		return fmt.Errorf("store: job %q: clear journal: %w", job, err)
	}
	return nil
}
