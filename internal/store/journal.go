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
	Entries []JournalEntry
}

// JournalEntry is one step of an apply.
type JournalEntry struct {
	Path    string     // relative to the job root; index.ValidatePath
	Op      string     // OpWrite, OpDelete, OpMkdir, OpRmdir or OpMeta
	Staged  string     // OpWrite only: absolute path of the staged file
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
	for i, e := range j.Entries {
		bad := func(why string) error { return fmt.Errorf("entry %d (%q): %s", i, e.Path, why) }
		if err := index.ValidatePath(e.Path); err != nil {
			return fmt.Errorf("entry %d: %w", i, err)
		}
		switch e.Op {
		case OpWrite:
			if e.Staged == "" {
				return bad("write without a staged file")
			}
			if !filepath.IsAbs(e.Staged) || filepath.Clean(e.Staged) != e.Staged ||
				strings.ContainsRune(e.Staged, 0) || !utf8.ValidString(e.Staged) || len(e.Staged) > 4*index.MaxPathLen {
				return bad(fmt.Sprintf("staged path %q is not a clean absolute path", e.Staged))
			}
			if e.Hash.IsZero() {
				return bad("write without a content hash")
			}
		case OpDelete, OpMkdir, OpRmdir, OpMeta:
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

// encodeJournal returns j as the sealed JSON value WriteJournal stores.
// It writes the JSON of diskJournal field by field into one buffer
// sized for the whole journal and seals it in place: an apply of 100,000
// files has a journal of ~25 MB, which json.Marshal of the whole journal
// built in a doubling buffer, copied, and seal copied again (~110 MB at
// once, the target's largest allocation of an initial sync).
func encodeJournal(j *Journal) ([]byte, error) {
	if err := validateJournal(j.Job, j); err != nil {
		return nil, err
	}
	size := 64 + len(j.Job)
	for i := range j.Entries {
		// the strings with room for a few escapes, two hashes in hex,
		// the keys and numbers
		n := len(j.Entries[i].Path) + len(j.Entries[i].Staged)
		size += n + n/8 + 2*2*index.HashSize + 160
	}
	buf := bytes.NewBuffer(make([]byte, 0, size+8))
	enc := json.NewEncoder(buf) // strings as json.Marshal writes them (and a newline)
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
	if err := str(`{"job":`, j.Job); err != nil {
		return nil, err
	}
	buf.WriteString(`,"generation":`)
	buf.Write(strconv.AppendUint(scratch[:0], j.Generation, 10))
	if j.Restore {
		buf.WriteString(`,"restore":true`)
	}
	buf.WriteString(`,"entries":[`)
	for i := range j.Entries {
		e := &j.Entries[i]
		if i > 0 {
			buf.WriteByte(',')
		}
		// the fields of diskJournalEntry, in its order
		if err := str(`{"path":`, e.Path); err != nil {
			return nil, err
		}
		if err := str(`,"op":`, e.Op); err != nil {
			return nil, err
		}
		if e.Staged != "" {
			if err := str(`,"staged":`, e.Staged); err != nil {
				return nil, err
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
	buf.WriteString("]}")
	body := buf.Bytes()
	return binary.LittleEndian.AppendUint64(body, sealSum(keyJournal, body)), nil
}

// decodeJournal parses and validates the journal of job. Every error
// wraps ErrCorrupt.
func decodeJournal(job string, v []byte) (*Journal, error) {
	b, err := unseal("journal", keyJournal, v)
	if err != nil {
		return nil, err
	}
	var d diskJournal
	if err := json.Unmarshal(b, &d); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrCorrupt, err)
	}
	return journalFromDisk(job, &d)
}

func journalFromDisk(job string, d *diskJournal) (*Journal, error) {
	var err error
	j := &Journal{Job: d.Job, Generation: d.Generation, Restore: d.Restore, Entries: make([]JournalEntry, 0, len(d.Entries))}
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

// WriteJournal replaces the intent journal of job with j (j.Job must be
// job or empty) and returns only once it is durable (committed).
// Blobs named by the entries' Hash and OldHash are kept by GC while the
// journal exists.
func (s *Store) WriteJournal(job string, j *Journal) error {
	if err := s.writable(); err != nil {
		return err
	}
	fail := func(err error) error {
		return fmt.Errorf("store: job %q generation %d: write journal: %w", job, j.Generation, err)
	}
	cp := *j
	if cp.Job == "" {
		cp.Job = job
	}
	if cp.Job != job {
		return fail(fmt.Errorf("journal belongs to job %q", cp.Job))
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
		return jb.Put(keyJournal, b)
	})
	if err != nil {
		return fail(err)
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
	return decodeJournal(job, b)
}

// ClearJournal removes the intent journal of job (durably); no journal is
// not an error.
func (s *Store) ClearJournal(job string) error {
	err := s.update(func(tx *bolt.Tx) error {
		jb, err := jobBucket(tx, job, false)
		if err != nil || jb == nil {
			return err
		}
		return jb.Delete(keyJournal)
	})
	if err != nil {
		return fmt.Errorf("store: job %q: clear journal: %w", job, err)
	}
	return nil
}
