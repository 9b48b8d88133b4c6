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
	// Inline carries the content of small changed files, so that a target
	// holding the previous version needs no transfer round trip.
	Inline []Inline `json:"inline,omitempty"`
}

// MaxInline bounds the bytes of one Inline entry.
const MaxInline = 1 << 20

// Inline is content carried inside an Announce: a zstd frame of the whole
// content, or a pbxsync/delta encoding against Base.
type Inline struct {
	Hash     []byte `json:"hash"`
	Base     []byte `json:"base,omitempty"`
	Encoding string `json:"encoding"` // EncodingZstd or EncodingDelta
	Data     []byte `json:"data"`
}

func (in *Inline) validate() error {
	switch {
	case len(in.Hash) != index.HashSize:
		return fmt.Errorf("inline hash: %d bytes, want %d", len(in.Hash), index.HashSize)
	case in.Encoding == EncodingDelta && len(in.Base) != index.HashSize:
		return fmt.Errorf("inline delta without a %d-byte base", index.HashSize)
	case in.Encoding == EncodingZstd && len(in.Base) != 0:
		return fmt.Errorf("inline zstd content with a base")
	case in.Encoding != EncodingZstd && in.Encoding != EncodingDelta:
		return fmt.Errorf("inline encoding %q: want zstd or delta", truncate(in.Encoding, 40))
	case len(in.Data) > MaxInline:
		return fmt.Errorf("inline data: %d bytes > %d", len(in.Data), MaxInline)
	}
	return nil
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
	if len(m.Inline) > MaxItems {
		return fmt.Errorf("inline: %d entries", len(m.Inline))
	}
	for i := range m.Inline {
		if err := m.Inline[i].validate(); err != nil {
			return fmt.Errorf("inline %d: %w", i, err)
		}
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
