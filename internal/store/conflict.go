package store

import (
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"time"

	bolt "go.etcd.io/bbolt"

	"pbxsync/internal/index"
)

// Conflict is the record of two concurrent versions of an item of a mesh
// job: the winner is live, the loser's content is kept here. Records live
// in jobs/<job>/conflicts (id → JSON), each holding a reference to the
// loser's blob, and are not pruned with generations: GC never drops them.
type Conflict struct {
	ID     string       `json:"id"`
	Path   string       `json:"path"`
	Time   time.Time    `json:"time"`
	Winner ConflictSide `json:"winner"`
	Loser  ConflictSide `json:"loser"`
	// Reason is set when the loser lost to a member's checks, not to a
	// concurrent version: why that member refused it.
	Reason string `json:"reason,omitempty"`
	// Row is the losing row of a postgres job as JSON (Hash zero then).
	Row json.RawMessage `json:"row,omitempty"`
}

// ConflictSide is one version of a conflict.
type ConflictSide struct {
	Node       string     `json:"node"`                 // the member that made it
	Generation uint64     `json:"generation,omitempty"` // the winner: this node's generation holding it
	Hash       index.Hash `json:"-"`
	Size       int64      `json:"size,omitempty"`    // of the content
	Deleted    bool       `json:"deleted,omitempty"` // the version is a deletion
}

// conflictDisk is a record as stored: hashes as hex.
type conflictDisk struct {
	Conflict
	WinnerHash string `json:"winner_hash,omitempty"`
	LoserHash  string `json:"loser_hash,omitempty"`
}

var bktConflicts = []byte("conflicts")

// maxConflictID bounds a record's ID.
const maxConflictID = 64

// PutConflict records c for job. The loser's content (unless it is a
// deletion or a row) must be in the store; it is kept as long as the
// record. Putting a record whose ID is already there changes nothing, so
// every member may record a conflict it sees as often as it sees it.
func (s *Store) PutConflict(job string, c Conflict) error {
	if err := s.writable(); err != nil {
		return err
	}
	fail := func(err error) error {
		return fmt.Errorf("store: job %q: conflict %q at %s: %w", job, c.ID, c.Path, err)
	}
	if c.ID == "" || len(c.ID) > maxConflictID {
		return fail(errors.New("bad record ID"))
	}
	d := conflictDisk{Conflict: c}
	if !c.Winner.Hash.IsZero() {
		d.WinnerHash = c.Winner.Hash.String()
	}
	if !c.Loser.Hash.IsZero() {
		d.LoserHash = c.Loser.Hash.String()
	}
	body, err := json.Marshal(d)
	if err != nil {
		return fail(err)
	}
	err = s.update(func(tx *bolt.Tx) error {
		jb, err := jobBucket(tx, job, true)
		if err != nil {
			return err
		}
		cb, err := jb.CreateBucketIfNotExists(bktConflicts)
		if err != nil {
			return err
		}
		if cb.Get([]byte(c.ID)) != nil {
			return nil
		}
		if !c.Loser.Hash.IsZero() {
			if !s.hasTx(tx, c.Loser.Hash) {
				return fmt.Errorf("losing content %s: %w", c.Loser.Hash.Short(), ErrNotFound)
			}
			if err := ref(tx, c.Loser.Hash, 1); err != nil {
				return err
			}
		}
		return cb.Put([]byte(c.ID), seal([]byte(c.ID), body))
	})
	if err != nil {
		return fail(err)
	}
	return nil
}

// Conflicts returns the conflict records of job, oldest first.
func (s *Store) Conflicts(job string) ([]Conflict, error) {
	var out []Conflict
	err := s.view(func(tx *bolt.Tx) error {
		jb, err := jobBucket(tx, job, false)
		if err != nil || jb == nil {
			return err
		}
		cb := jb.Bucket(bktConflicts)
		if cb == nil {
			return nil
		}
		return cb.ForEach(func(k, v []byte) error {
			c, err := decodeConflict(k, v)
			if err != nil {
				return err
			}
			out = append(out, c)
			return nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("store: job %q: conflicts: %w", job, err)
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].Time.Before(out[j].Time) })
	return out, nil
}

// ConflictCount returns how many conflict records job has, without
// reading them.
func (s *Store) ConflictCount(job string) (int, error) {
	n := 0
	err := s.view(func(tx *bolt.Tx) error {
		jb, err := jobBucket(tx, job, false)
		if err != nil || jb == nil {
			return err
		}
		if cb := jb.Bucket(bktConflicts); cb != nil {
			n = cb.Stats().KeyN
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("store: job %q: conflicts: %w", job, err)
	}
	return n, nil
}

func decodeConflict(k, v []byte) (Conflict, error) {
	b, err := unseal("conflict", k, v)
	if err != nil {
		return Conflict{}, err
	}
	var d conflictDisk
	if err := json.Unmarshal(b, &d); err != nil {
		return Conflict{}, fmt.Errorf("%w: conflict %q: %v", ErrCorrupt, k, err)
	}
	c := d.Conflict
	for _, x := range []struct {
		s   string
		dst *index.Hash
	}{{d.WinnerHash, &c.Winner.Hash}, {d.LoserHash, &c.Loser.Hash}} {
		if x.s == "" {
			continue
		}
		h, err := index.ParseHash(x.s)
		if err != nil {
			return Conflict{}, fmt.Errorf("%w: conflict %q: %v", ErrCorrupt, k, err)
		}
		*x.dst = h
	}
	return c, nil
}
