package store

// Readers of the format-1 layout (plain files, see migrate.go), kept for
// the migration only.

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"pbxsync/internal/index"
)

const (
	maxMetaFile1  = 64 << 20
	maxIndexFile1 = 1 << 30
)

// diskMeta is the body of gen/<n>.meta.
type diskMeta1 struct {
	Job           string    `json:"job"`
	Generation    uint64    `json:"generation"`
	Time          time.Time `json:"time"`
	Origin        string    `json:"origin"`
	SourceVersion uint64    `json:"source_version"`
	Changed       []string  `json:"changed"`
	State         State     `json:"state"`
	Reason        string    `json:"reason"`
	Links         []Link    `json:"links,omitempty"` // written by format 1 since issue 10 case 10
	IndexSum      string    `json:"index_sum"`       // BLAKE3 of the body of gen/<n>.index
	IndexItems    int       `json:"index_items"`     // for humans
}

// diskIndex is the body of gen/<n>.index.
type diskIndex struct {
	Job        string     `json:"job"`
	Generation uint64     `json:"generation"`
	Items      []diskItem `json:"items"` // sorted by path
}

type diskItem struct {
	Path    string        `json:"path"`
	Kind    string        `json:"kind"` // "file" | "dir"
	Size    int64         `json:"size,omitempty"`
	Mode    uint32        `json:"mode"`
	MTime   int64         `json:"mtime"`
	Hash    string        `json:"hash,omitempty"` // hex; absent for the zero hash
	Deleted bool          `json:"deleted,omitempty"`
	Version []diskCounter `json:"version,omitempty"`
}

type diskCounter struct {
	Node  string `json:"node"`
	Value uint64 `json:"value"`
}

// decodeMeta parses and validates a gen/<n>.meta file of job. Every error
// wraps ErrCorrupt.
func decodeMeta1(job string, n uint64, b []byte) (*metaRecord1, error) {
	body, err := decodeEnvelope("meta", b)
	if err != nil {
		return nil, err
	}
	var m diskMeta1
	if err := json.Unmarshal(body, &m); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrCorrupt, err)
	}
	g := &GenerationInfo{Job: m.Job, Number: m.Generation, Time: m.Time, Origin: m.Origin,
		SourceVersion: m.SourceVersion, Changed: m.Changed, State: m.State, Reason: m.Reason, Links: m.Links}
	if g.Changed == nil {
		g.Changed = []string{}
	}
	if err := validateInfo(job, g); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrCorrupt, err)
	}
	if n != 0 && g.Number != n {
		return nil, fmt.Errorf("%w: file of generation %d holds generation %d", ErrCorrupt, n, g.Number)
	}
	sum, err := index.ParseHash(m.IndexSum)
	if err != nil {
		return nil, fmt.Errorf("%w: index_sum: %v", ErrCorrupt, err)
	}
	return &metaRecord1{info: *g, indexSum: sum, items: m.IndexItems}, nil
}

// metaRecord1 is a decoded meta file.
type metaRecord1 struct {
	info     GenerationInfo
	indexSum index.Hash
	items    int
}

// decodeIndex parses and validates a gen/<n>.index file of job. When want
// is not zero the body must hash to it (the meta file's index_sum). Every
// error wraps ErrCorrupt.
func decodeIndex1(job string, n uint64, want index.Hash, b []byte) (index.Index, error) {
	body, err := decodeEnvelope("index", b)
	if err != nil {
		return index.Index{}, err
	}
	if !want.IsZero() && index.Sum(body) != want {
		return index.Index{}, fmt.Errorf("%w: index does not match its meta file (index_sum)", ErrCorrupt)
	}
	var d diskIndex
	if err := json.Unmarshal(body, &d); err != nil {
		return index.Index{}, fmt.Errorf("%w: %v", ErrCorrupt, err)
	}
	if d.Job != job || (n != 0 && d.Generation != n) {
		return index.Index{}, fmt.Errorf("%w: index belongs to job %q generation %d", ErrCorrupt, d.Job, d.Generation)
	}
	x := index.New(len(d.Items))
	for _, di := range d.Items {
		it := index.Item{Path: di.Path, Size: di.Size, Mode: index.FileMode(di.Mode), MTime: di.MTime, Deleted: di.Deleted}
		switch di.Kind {
		case "file":
			it.Kind = index.KindFile
		case "dir":
			it.Kind = index.KindDir
		default:
			return index.Index{}, fmt.Errorf("%w: item %q: unknown kind %q", ErrCorrupt, di.Path, di.Kind)
		}
		if di.Hash != "" {
			if it.Hash, err = index.ParseHash(di.Hash); err != nil {
				return index.Index{}, fmt.Errorf("%w: item %q: %v", ErrCorrupt, di.Path, err)
			}
		}
		for _, c := range di.Version {
			it.Version = append(it.Version, index.Counter(c))
		}
		if err := validateItem(&it); err != nil {
			return index.Index{}, fmt.Errorf("%w: %v", ErrCorrupt, err)
		}
		if x.Has(it.Path) {
			return index.Index{}, fmt.Errorf("%w: item %q twice", ErrCorrupt, it.Path)
		}
		x.Set(it)
	}
	return x, nil
}

func genName(n uint64, ext string) string { return fmt.Sprintf("%020d.%s", n, ext) }

// parseGenName returns the number of a gen/ file name with extension ext.
func parseGenName(name, ext string) (uint64, bool) {
	num, ok := strings.CutSuffix(name, "."+ext)
	if !ok || len(num) != 20 {
		return 0, false
	}
	n, err := strconv.ParseUint(num, 10, 64)
	if err != nil || n == 0 {
		return 0, false
	}
	return n, true
}

func (s *Store) genDir(job string) (string, error) {
	d, err := s.jobDir(job)
	if err != nil {
		return "", err
	}
	return filepath.Join(d, "gen"), nil
}

// genNumbers lists the generation numbers of job (those with a meta file),
// ascending.
func (s *Store) genNumbers(job string) ([]uint64, error) {
	dir, err := s.genDir(job)
	if err != nil {
		return nil, err
	}
	ents, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var out []uint64
	for _, e := range ents {
		if n, ok := parseGenName(e.Name(), "meta"); ok {
			out = append(out, n)
		}
	}
	slices.Sort(out)
	return out, nil
}

type diskExtra struct {
	Label      string    `json:"label"`
	Hash       string    `json:"hash"`
	Generation uint64    `json:"generation"`
	Time       time.Time `json:"time"`
}

// decodeExtras parses the extras file; every error wraps ErrCorrupt.
func decodeExtras1(b []byte) ([]Extra, error) {
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

type diskJournal struct {
	Job        string             `json:"job"`
	Generation uint64             `json:"generation"`
	Restore    bool               `json:"restore,omitempty"`
	Exchange   bool               `json:"exchange,omitempty"`
	Entries    []diskJournalEntry `json:"entries"`
}

type diskJournalEntry struct {
	Path    string `json:"path"`
	Op      string `json:"op"`
	Staged  string `json:"staged,omitempty"`
	Hash    string `json:"hash,omitempty"`
	OldHash string `json:"old_hash,omitempty"`
	Mode    uint32 `json:"mode"`
	MTime   int64  `json:"mtime"`
}

// decodeJournal parses and validates the journal file of job. Every error
// wraps ErrCorrupt.
func decodeJournal1(job string, b []byte) (*Journal, error) {
	body, err := decodeEnvelope("journal", b)
	if err != nil {
		return nil, err
	}
	var d diskJournal
	if err := json.Unmarshal(body, &d); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrCorrupt, err)
	}
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
