package wire

import (
	"fmt"
	"io/fs"

	"pbxsync/internal/index"
)

// Item is an index.Item as it travels: short keys, hash as bytes.
type Item struct {
	Path    string          `json:"p"`
	Kind    uint8           `json:"k"`
	Size    int64           `json:"s,omitempty"`
	Mode    uint32          `json:"m"`
	MTime   int64           `json:"t"`
	Hash    []byte          `json:"h,omitempty"`
	Deleted bool            `json:"d,omitempty"`
	Version []index.Counter `json:"v,omitempty"`
}

// Announce tells a target the source's complete index of a job at a version.
type Announce struct {
	Job     string `json:"job"`
	Version uint64 `json:"version"` // the origin's generation number
	Origin  string `json:"origin"`  // node name that made the change
	Reason  string `json:"reason,omitempty"`
	Time    int64  `json:"time,omitempty"` // when the origin recorded it, Unix ns
	Items   []Item `json:"items"`
}

// Type implements Message.
func (*Announce) Type() Type { return TypeAnnounce }

// Validate implements Message: job name, item count, and every item.
func (m *Announce) Validate() error {
	if err := checkName("job", m.Job); err != nil {
		return err
	}
	if err := checkName("origin", m.Origin); err != nil {
		return err
	}
	if err := checkText("reason", m.Reason, MaxReasonLen); err != nil {
		return err
	}
	if len(m.Items) > MaxItems {
		return fmt.Errorf("items: %d > %d", len(m.Items), MaxItems)
	}
	seen := make(map[string]struct{}, len(m.Items))
	for i := range m.Items {
		if err := m.Items[i].validate(); err != nil {
			return fmt.Errorf("item %d: %w", i, err)
		}
		if _, dup := seen[m.Items[i].Path]; dup {
			return fmt.Errorf("item %d: path %q appears twice", i, m.Items[i].Path)
		}
		seen[m.Items[i].Path] = struct{}{}
	}
	return nil
}

func (it *Item) validate() error {
	if err := index.ValidatePath(it.Path); err != nil {
		return err
	}
	switch index.Kind(it.Kind) {
	case index.KindFile:
		if len(it.Hash) != index.HashSize && !it.Deleted {
			return fmt.Errorf("%q: hash has %d bytes, want %d", it.Path, len(it.Hash), index.HashSize)
		}
	case index.KindDir:
		if len(it.Hash) != 0 || it.Size != 0 {
			return fmt.Errorf("%q: a directory has no hash or size", it.Path)
		}
	default:
		return fmt.Errorf("%q: unknown kind %d", it.Path, it.Kind)
	}
	if it.Size < 0 {
		return fmt.Errorf("%q: negative size", it.Path)
	}
	if it.Mode&^uint32(fs.ModePerm) != 0 {
		return fmt.Errorf("%q: mode %o has bits beyond permissions", it.Path, it.Mode)
	}
	if len(it.Version) > 1024 {
		return fmt.Errorf("%q: version vector of %d entries", it.Path, len(it.Version))
	}
	return nil
}

// FromIndex converts an index to wire items, sorted by path.
func FromIndex(x index.Index) []Item {
	out := make([]Item, 0, len(x))
	for _, it := range x.Sorted() {
		w := Item{Path: it.Path, Kind: uint8(it.Kind), Size: it.Size, Mode: uint32(it.Mode.Perm()), MTime: it.MTime, Deleted: it.Deleted, Version: it.Version}
		if it.Kind == index.KindFile && !it.Deleted {
			w.Hash = append([]byte(nil), it.Hash[:]...)
		}
		out = append(out, w)
	}
	return out
}

// ToIndex converts validated wire items back to an index.
func ToIndex(items []Item) index.Index {
	x := make(index.Index, len(items))
	for _, w := range items {
		it := index.Item{Path: w.Path, Kind: index.Kind(w.Kind), Size: w.Size, Mode: fs.FileMode(w.Mode), MTime: w.MTime, Deleted: w.Deleted, Version: index.Vector(w.Version)}
		copy(it.Hash[:], w.Hash)
		x[w.Path] = it
	}
	return x
}
