package store

import (
	"bytes"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	bolt "go.etcd.io/bbolt"

	"pbxsync/internal/index"
)

// Extra is a blob kept for a user's sake outside any generation's index: a
// local edit saved before a push overwrote it, or the losing side of a
// mesh conflict. It is kept as long as the generation that was newest when
// it was saved (Generation) is kept, so GC drops it together with that
// generation's window, never earlier.
type Extra struct {
	Label      string     // what it is, for humans: e.g. "local-edit sip.conf"
	Hash       index.Hash // the content
	Generation uint64     // newest generation of the job when saved; 0 if none
	Time       time.Time  // when it was saved
}

const maxLabelLen = 4096

func validateLabel(l string) error {
	if l == "" || len(l) > maxLabelLen || !utf8.ValidString(l) {
		return fmt.Errorf("bad label %q", l)
	}
	return nil
}

func encodeExtras(xs []Extra) ([]byte, error) {
	d := make([]diskExtra, 0, len(xs))
	for _, x := range xs {
		if err := validateLabel(x.Label); err != nil {
			return nil, err
		}
		d = append(d, diskExtra{Label: x.Label, Hash: x.Hash.String(), Generation: x.Generation, Time: x.Time})
	}
	b, err := json.Marshal(d)
	if err != nil {
		return nil, err
	}
	return seal(keyExtras, b), nil
}

// decodeExtras parses the extras of a job; every error wraps ErrCorrupt.
func decodeExtras(v []byte) ([]Extra, error) {
	b, err := unseal("extras", keyExtras, v)
	if err != nil {
		return nil, err
	}
	var d []diskExtra
	if err := json.Unmarshal(b, &d); err != nil {
		return nil, fmt.Errorf("%w: extras: %v", ErrCorrupt, err)
	}
	return extrasFromDisk(d)
}

func extrasFromDisk(d []diskExtra) ([]Extra, error) {
	out := make([]Extra, 0, len(d))
	for i, x := range d {
		h, err := index.ParseHash(x.Hash)
		if err != nil {
			return nil, fmt.Errorf("%w: extra %d: %v", ErrCorrupt, i, err)
		}
		if err := validateLabel(x.Label); err != nil {
			return nil, fmt.Errorf("%w: extra %d: %v", ErrCorrupt, i, err)
		}
		out = append(out, Extra{Label: x.Label, Hash: h, Generation: x.Generation, Time: x.Time})
	}
	return out, nil
}

// readExtras returns the extras of jb (nil: none).
func readExtras(jb *bolt.Bucket) ([]Extra, error) {
	if jb == nil {
		return nil, nil
	}
	b := jb.Get(keyExtras)
	if b == nil {
		return nil, nil
	}
	return decodeExtras(b)
}

func writeExtras(jb *bolt.Bucket, xs []Extra) error {
	if len(xs) == 0 {
		return jb.Delete(keyExtras)
	}
	b, err := encodeExtras(xs)
	if err != nil {
		return err
	}
	return jb.Put(keyExtras, b)
}

// SaveExtra records blob h (which must be in the store) as an extra of job
// under label: a saved local edit or a conflict copy. It is attached to
// the job's newest generation and kept by GC until that generation is
// collected. Saving the same label and hash again changes nothing.
func (s *Store) SaveExtra(job, label string, h index.Hash) error {
	if err := s.writable(); err != nil {
		return err
	}
	fail := func(err error) error {
		return fmt.Errorf("store: job %q: save extra %q (blob %s): %w", job, label, h, err)
	}
	if err := validateLabel(label); err != nil {
		return fail(err)
	}
	var gen uint64
	saved := false
	err := s.update(func(tx *bolt.Tx) error {
		jb, err := jobBucket(tx, job, true)
		if err != nil {
			return err
		}
		if !s.hasTx(tx, h) {
			return ErrNotFound
		}
		xs, err := readExtras(jb)
		if err != nil {
			return err
		}
		for _, x := range xs {
			if x.Label == label && x.Hash == h {
				return nil
			}
		}
		gen = newestGen(jb)
		xs = append(xs, Extra{Label: label, Hash: h, Generation: gen, Time: time.Now().UTC()})
		if err := writeExtras(jb, xs); err != nil {
			return err
		}
		saved = true
		return ref(tx, h, 1)
	})
	if err != nil {
		return fail(err)
	}
	if saved {
		s.log.Info("saved extra", "job", job, "label", label, "blob", h.String(), "generation", gen)
	}
	return nil
}

// Extras returns the extras of job in the order they were saved.
func (s *Store) Extras(job string) ([]Extra, error) {
	var xs []Extra
	err := s.view(func(tx *bolt.Tx) error {
		jb, err := jobBucket(tx, job, false)
		if err != nil {
			return err
		}
		xs, err = readExtras(jb)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("store: job %q: extras: %w", job, err)
	}
	return xs, nil
}

// maxJobState bounds a job state value (bbolt's own limit is 2 GiB).
const maxJobState = 1 << 30

// PutJobState stores v (as JSON) as the syncer's state of job, replacing
// the previous one atomically and durably. State that grows with the
// number of paths belongs in PutScanStates.
func (s *Store) PutJobState(job string, v any) error {
	if err := s.writable(); err != nil {
		return err
	}
	fail := func(err error) error { return fmt.Errorf("store: job %q: put job state: %w", job, err) }
	body, err := json.Marshal(v)
	if err != nil {
		return fail(err)
	}
	if len(body) > maxJobState {
		return fail(fmt.Errorf("state of %d bytes is too large", len(body)))
	}
	err = s.update(func(tx *bolt.Tx) error {
		jb, err := jobBucket(tx, job, true)
		if err != nil {
			return err
		}
		return jb.Put(keyState, seal(keyState, body))
	})
	if err != nil {
		return fail(err)
	}
	return nil
}

// JobState decodes the state of job stored by PutJobState into v; ok is
// false (and v untouched) when none was stored. A damaged value gives an
// error wrapping ErrCorrupt.
func (s *Store) JobState(job string, v any) (bool, error) {
	fail := func(err error) (bool, error) { return false, fmt.Errorf("store: job %q: job state: %w", job, err) }
	var body []byte
	err := s.view(func(tx *bolt.Tx) error {
		jb, err := jobBucket(tx, job, false)
		if err != nil || jb == nil {
			return err
		}
		if b := jb.Get(keyState); b != nil {
			p, err := unseal("job state", keyState, b)
			if err != nil {
				return err
			}
			body = append([]byte(nil), p...)
		}
		return nil
	})
	if err != nil {
		return fail(err)
	}
	if body == nil {
		return false, nil
	}
	if err := json.Unmarshal(body, v); err != nil {
		return fail(fmt.Errorf("%w: %v", ErrCorrupt, err))
	}
	return true, nil
}

// scanChunk is how many paths of scan state one transaction of
// PutScanStates writes at most.
const scanChunk = 8192

// PutScanStates updates the per-path scan state of job: every path stored
// at or below one of roots ("" is the whole job) that set lacks is
// removed, and every key of set gets its value (opaque bytes: the
// syncer's business). The cost is that of the paths under roots, not of
// the job. It commits every scanChunk paths, so that a large save (every
// path after an initial sync) does not hold up other writes for its whole
// length nor keep all its dirty pages in memory; a crash in between keeps
// the removals and part of the values (the scan state is a cache: a path
// without its value is hashed again).
func (s *Store) PutScanStates(job string, roots []string, set map[string][]byte) error {
	// in key order: bbolt inserts into a node's sorted slice and splits
	// nodes only at the commit, so keys in random order into a large
	// bucket cost O(n²) copying (8 s of CPU for 100k paths)
	keys := slices.Sorted(maps.Keys(set))
	for _, p := range keys {
		if err := index.ValidatePath(p); err != nil {
			return fmt.Errorf("store: job %q: put scan states: %w", job, err)
		}
	}
	first := true
	for first || len(keys) > 0 {
		chunk := keys[:min(len(keys), scanChunk)]
		keys = keys[len(chunk):]
		err := s.update(func(tx *bolt.Tx) error {
			jb, err := jobBucket(tx, job, true)
			if err != nil {
				return err
			}
			b := jb.Bucket(bktScan)
			b.FillPercent = fillPercent
			if first {
				if err := dropScanStates(b, roots, set); err != nil {
					return err
				}
			}
			for _, p := range chunk {
				if err := b.Put([]byte(p), seal([]byte(p), set[p])); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			return fmt.Errorf("store: job %q: put scan states: %w", job, err)
		}
		first = false
	}
	return nil
}

// dropScanStates removes from b every path at or below one of roots that
// set lacks.
func dropScanStates(b *bolt.Bucket, roots []string, set map[string][]byte) error {
	for _, r := range roots {
		var drop [][]byte
		c := b.Cursor()
		var k []byte
		if r == "" {
			k, _ = c.First()
		} else {
			k, _ = c.Seek([]byte(r))
		}
		for ; k != nil; k, _ = c.Next() {
			p := string(k)
			if r != "" && p != r && !strings.HasPrefix(p, r+"/") {
				if p > r+"/" {
					break
				}
				continue // e.g. "a.b" between "a" and "a/"
			}
			if _, keep := set[p]; !keep {
				drop = append(drop, bytes.Clone(k))
			}
		}
		for _, k := range drop {
			if err := b.Delete(k); err != nil {
				return err
			}
		}
	}
	return nil
}

// ReplaceScanStates replaces the whole scan state of job by set.
func (s *Store) ReplaceScanStates(job string, set map[string][]byte) error {
	err := s.update(func(tx *bolt.Tx) error {
		jb, err := jobBucket(tx, job, true)
		if err != nil {
			return err
		}
		if err := jb.DeleteBucket(bktScan); err != nil {
			return err
		}
		b, err := jb.CreateBucket(bktScan)
		if err != nil {
			return err
		}
		for _, p := range slices.Sorted(maps.Keys(set)) { // in key order: see PutScanStates
			v := set[p]
			if err := index.ValidatePath(p); err != nil {
				return err
			}
			if err := b.Put([]byte(p), seal([]byte(p), v)); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("store: job %q: replace scan states: %w", job, err)
	}
	return nil
}

// ScanStates calls fn for every path's scan state of job, in path order;
// v is valid only during the call. An error of fn stops the walk and is
// returned.
func (s *Store) ScanStates(job string, fn func(path string, v []byte) error) error {
	err := s.view(func(tx *bolt.Tx) error {
		jb, err := jobBucket(tx, job, false)
		if err != nil || jb == nil {
			return err
		}
		// the states of 100,000 paths are ~10 MiB of the database:
		// dropped as they are read (see readItems)
		pass := mappedPass{tx: tx}
		defer pass.drop()
		return jb.Bucket(bktScan).ForEach(func(k, v []byte) error {
			pass.walk(len(k) + len(v))
			p, why := unsealed(k, v)
			if why != "" {
				return fmt.Errorf("%w: scan state of %q: %s", ErrCorrupt, k, why)
			}
			return fn(string(k), p)
		})
	})
	if err != nil {
		return fmt.Errorf("store: job %q: scan states: %w", job, err)
	}
	return nil
}
