package store

import (
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"time"
	"unicode/utf8"

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

type diskExtra struct {
	Label      string    `json:"label"`
	Hash       string    `json:"hash"`
	Generation uint64    `json:"generation"`
	Time       time.Time `json:"time"`
}

const (
	maxLabelLen   = 4096
	maxExtrasFile = 64 << 20
)

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
	body, err := json.MarshalIndent(d, "", " ")
	if err != nil {
		return nil, err
	}
	return encodeEnvelope("extras", append(body, '\n')), nil
}

// decodeExtras parses the extras file; every error wraps ErrCorrupt.
func decodeExtras(b []byte) ([]Extra, error) {
	body, err := decodeEnvelope("extras", b)
	if err != nil {
		return nil, err
	}
	var d []diskExtra
	if err := json.Unmarshal(body, &d); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrCorrupt, err)
	}
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

func (s *Store) extrasPath(job string) (string, error) {
	d, err := s.jobDir(job)
	if err != nil {
		return "", err
	}
	return filepath.Join(d, "extras"), nil
}

// readExtras returns the extras of job, none when there is no file.
func (s *Store) readExtras(job string) ([]Extra, error) {
	path, err := s.extrasPath(job)
	if err != nil {
		return nil, err
	}
	b, err := readFileMax(path, maxExtrasFile)
	if errors.Is(err, ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	xs, err := decodeExtras(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return xs, nil
}

func (s *Store) writeExtras(job string, xs []Extra) error {
	path, err := s.extrasPath(job)
	if err != nil {
		return err
	}
	b, err := encodeExtras(xs)
	if err != nil {
		return err
	}
	if err := mkdirAllSync(filepath.Dir(path)); err != nil {
		return err
	}
	return writeFileSync(path, b, s.tmpDir(), false)
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
	if _, err := jobDirName(job); err != nil {
		return fail(err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.Has(h) {
		return fail(ErrNotFound)
	}
	xs, err := s.readExtras(job)
	if err != nil {
		return fail(err)
	}
	for _, x := range xs {
		if x.Label == label && x.Hash == h {
			return nil
		}
	}
	nums, err := s.genNumbers(job)
	if err != nil {
		return fail(err)
	}
	var gen uint64
	if len(nums) > 0 {
		gen = nums[len(nums)-1]
	}
	xs = append(xs, Extra{Label: label, Hash: h, Generation: gen, Time: time.Now().UTC()})
	if err := s.writeExtras(job, xs); err != nil {
		return fail(err)
	}
	s.log.Info("saved extra", "job", job, "label", label, "blob", h.String(), "generation", gen)
	return nil
}

// Extras returns the extras of job in the order they were saved.
func (s *Store) Extras(job string) ([]Extra, error) {
	if err := s.usable(); err != nil {
		return nil, err
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	xs, err := s.readExtras(job)
	if err != nil {
		return nil, fmt.Errorf("store: job %q: extras: %w", job, err)
	}
	return xs, nil
}

// maxJobStateFile bounds a job state file.
const maxJobStateFile = 16 << 20

// PutJobState stores v (as JSON) as the syncer's state of job, replacing
// the previous one atomically and durably.
func (s *Store) PutJobState(job string, v any) error {
	if err := s.writable(); err != nil {
		return err
	}
	fail := func(err error) error { return fmt.Errorf("store: job %q: put job state: %w", job, err) }
	d, err := s.jobDir(job)
	if err != nil {
		return fail(err)
	}
	body, err := json.Marshal(v)
	if err != nil {
		return fail(err)
	}
	if len(body) > maxJobStateFile-200 {
		return fail(fmt.Errorf("state of %d bytes is too large", len(body)))
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := mkdirAllSync(d); err != nil {
		return fail(err)
	}
	if err := writeFileSync(filepath.Join(d, "state"), encodeEnvelope("state", append(body, '\n')), s.tmpDir(), false); err != nil {
		return fail(err)
	}
	return nil
}

// JobState decodes the state of job stored by PutJobState into v; ok is
// false (and v untouched) when none was stored. A damaged file gives an
// error wrapping ErrCorrupt.
func (s *Store) JobState(job string, v any) (bool, error) {
	if err := s.usable(); err != nil {
		return false, err
	}
	fail := func(err error) (bool, error) { return false, fmt.Errorf("store: job %q: job state: %w", job, err) }
	d, err := s.jobDir(job)
	if err != nil {
		return fail(err)
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	path := filepath.Join(d, "state")
	b, err := readFileMax(path, maxJobStateFile)
	if errors.Is(err, ErrNotFound) {
		return false, nil
	}
	if err != nil {
		return fail(err)
	}
	body, err := decodeEnvelope("state", b)
	if err != nil {
		return fail(fmt.Errorf("%s: %w", path, err))
	}
	if err := json.Unmarshal(body, v); err != nil {
		return fail(fmt.Errorf("%s: %w: %v", path, ErrCorrupt, err))
	}
	return true, nil
}
