package wire

import (
	"bytes"
	"fmt"
	"iter"
	"slices"
	"sort"

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

// Announce tells a target the source's index of a job at a version: the
// complete index, or (Base set) only what changed since version Base,
// which the target is known to hold.
type Announce struct {
	Job     string `json:"job"`
	Version uint64 `json:"version"` // the origin's generation number
	Origin  string `json:"origin"`  // node name that made the change
	Reason  string `json:"reason,omitempty"`
	Time    int64  `json:"time,omitempty"` // when the origin recorded it, Unix ns
	Items   []Item `json:"items"`          // all items, or (Base set) the changed and new ones
	// Base, when set, makes this an incremental announcement against
	// version Base: Items are the items that differ, Removed the paths
	// that are gone, and Digest the index.Digest of the complete result,
	// so the target can check its reconstruction.
	Base    uint64   `json:"base,omitempty"`
	Removed []string `json:"removed,omitempty"`
	Digest  []byte   `json:"digest,omitempty"`
	// Inline carries the content of small changed files, so that a target
	// holding the previous version needs no transfer round trip.
	Inline []Inline `json:"inline,omitempty"`
	// Unreadable lists paths the source cannot read and has no synced
	// content of (a file it never could read): a target keeps whatever it
	// has at and below them instead of deleting it. Complete, in every
	// announcement, incremental or not.
	Unreadable []string `json:"unreadable,omitempty"`
	// Part and Parts split one announcement over several messages (Parts
	// > 1) so that no message holds a whole large index (see Split): Items
	// are spread over the parts in order, Removed, Digest, Inline and
	// Unreadable ride in the last one, the other fields in every one. A
	// target assembles the parts (Assembler) before it uses any of them.
	Part  uint32 `json:"part,omitempty"`
	Parts uint32 `json:"parts,omitempty"`
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
	switch {
	case m.Parts == 1 || m.Parts > MaxParts:
		return fmt.Errorf("parts: %d, want 0 or 2 to %d", m.Parts, MaxParts)
	case m.Part != 0 && m.Part >= m.Parts:
		return fmt.Errorf("part %d of %d", m.Part, m.Parts)
	case m.Part+1 < m.Parts && (len(m.Removed) > 0 || len(m.Digest) > 0 || len(m.Inline) > 0 || len(m.Unreadable) > 0):
		return fmt.Errorf("part %d of %d carries what only the last part carries", m.Part, m.Parts)
	}
	if last := m.Part+1 >= m.Parts; last && m.Base != 0 && len(m.Digest) != index.HashSize {
		return fmt.Errorf("incremental announcement without a %d-byte digest", index.HashSize)
	}
	if m.Base == 0 && (len(m.Removed) > 0 || len(m.Digest) > 0) {
		return fmt.Errorf("removed paths or digest in a complete announcement")
	}
	if len(m.Removed) > MaxItems {
		return fmt.Errorf("removed: %d paths", len(m.Removed))
	}
	for _, p := range m.Removed {
		if err := index.ValidatePath(p); err != nil {
			return fmt.Errorf("removed: %w", err)
		}
		if _, dup := seen[p]; dup {
			return fmt.Errorf("path %q is both changed and removed", p)
		}
		seen[p] = struct{}{}
	}
	if len(m.Unreadable) > MaxItems {
		return fmt.Errorf("unreadable: %d paths", len(m.Unreadable))
	}
	for _, p := range m.Unreadable {
		if err := index.ValidatePath(p); err != nil {
			return fmt.Errorf("unreadable: %w", err)
		}
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
	if it.Mode&^0o7777 != 0 {
		return fmt.Errorf("%q: mode %o has bits beyond permissions", it.Path, it.Mode)
	}
	if len(it.Version) > 1024 {
		return fmt.Errorf("%q: version vector of %d entries", it.Path, len(it.Version))
	}
	return nil
}

// FromIndex converts an index to wire items, sorted by path.
func FromIndex(x index.Index) []Item {
	out := make([]Item, 0, x.Len())
	for it := range IndexItems(x) {
		out = append(out, it)
	}
	return out
}

// hashBlock is how many items' hashes IndexItems puts in one allocation.
const hashBlock = 1024

// IndexItems yields the wire items of x in path order, each time it is
// ranged over: sorted paths, not x.Sorted() (a copy of every item, 10 MB
// at 100,000 files), sorted once here; and the hashes of hashBlock items
// in one allocation, not one each. x must not change while it is used.
func IndexItems(x index.Index) iter.Seq[Item] {
	paths := make([]string, 0, x.Len())
	for p := range x.All() {
		paths = append(paths, p)
	}
	slices.Sort(paths)
	return func(yield func(Item) bool) {
		var hashes []byte
		for _, p := range paths {
			it, _ := x.Get(p)
			w := Item{Path: it.Path, Kind: uint8(it.Kind), Size: it.Size, Mode: index.UnixMode(it.Mode), MTime: it.MTime, Deleted: it.Deleted, Version: it.Version}
			if it.Kind == index.KindFile && !it.Deleted {
				if cap(hashes)-len(hashes) < index.HashSize {
					hashes = make([]byte, 0, hashBlock*index.HashSize)
				}
				n := len(hashes)
				hashes = append(hashes, it.Hash[:]...)
				w.Hash = hashes[n:len(hashes):len(hashes)]
			}
			if !yield(w) {
				return
			}
		}
	}
}

// FromItem converts one item to its wire form.
func FromItem(it index.Item) Item {
	w := Item{Path: it.Path, Kind: uint8(it.Kind), Size: it.Size, Mode: index.UnixMode(it.Mode), MTime: it.MTime, Deleted: it.Deleted, Version: it.Version}
	if it.Kind == index.KindFile && !it.Deleted {
		w.Hash = append([]byte(nil), it.Hash[:]...)
	}
	return w
}

// ToItem converts one validated wire item back.
func ToItem(w Item) index.Item {
	it := index.Item{Path: w.Path, Kind: index.Kind(w.Kind), Size: w.Size, Mode: index.FileMode(w.Mode), MTime: w.MTime, Deleted: w.Deleted, Version: index.Vector(w.Version)}
	copy(it.Hash[:], w.Hash)
	return it
}

// ToIndex converts validated wire items back to an index.
func ToIndex(items []Item) index.Index {
	x := index.New(len(items))
	for _, w := range items {
		x.Set(ToItem(w))
	}
	return x
}

// Incremental returns the announcement of next as changes against prev
// (Items, Removed and Digest; the caller sets Base and the other fields).
// It compares the whole indexes; Changes builds the same from the paths
// that changed.
func Incremental(prev, next index.Index) (items []Item, removed []string, digest []byte) {
	var paths []string
	for p, it := range next.All() {
		if old, ok := prev.Get(p); !ok || !sameItem(old, it) {
			paths = append(paths, p)
		}
	}
	for p := range prev.All() {
		if !next.Has(p) {
			paths = append(paths, p)
		}
	}
	items, removed = Changes(next, paths)
	d := next.Digest()
	return items, removed, d[:]
}

// Changes returns the Items and Removed of an incremental announcement
// of next from the paths that changed against its base (any order; a
// path listed twice counts once): the items of next at those paths and
// the paths next lacks, both sorted. It costs O(paths), whatever the size
// of next; the Digest is the caller's (a SetDigest it keeps).
func Changes(next index.Index, paths []string) (items []Item, removed []string) {
	sorted := append([]string(nil), paths...)
	sort.Strings(sorted)
	for i, p := range sorted {
		if i > 0 && sorted[i-1] == p {
			continue
		}
		if it, ok := next.Get(p); ok {
			items = append(items, FromItem(it))
		} else {
			removed = append(removed, p)
		}
	}
	return items, removed
}

// Apply rebuilds the complete index an incremental announcement describes
// from base, the index of version m.Base. It fails when the result does not
// have the announced digest (the target's base was not what the source
// thought). base is not changed.
func (m *Announce) Apply(base index.Index) (index.Index, error) {
	out := base.Clone()
	d := index.DigestOf(out)
	if _, err := m.ApplyTo(out, &d); err != nil {
		return index.Index{}, err
	}
	return out, nil
}

// ApplyTo is Apply in place: x, the index of version m.Base whose digest
// is d, becomes the announced index and d its digest, at a cost that
// grows with the change, not with x. It returns the paths that changed.
// When the result does not have the announced digest, x and d are put
// back as they were and an error returned.
func (m *Announce) ApplyTo(x index.Index, d *index.SetDigest) ([]string, error) {
	type undo struct {
		it  index.Item
		had bool
	}
	saved := make(map[string]undo, len(m.Items)+len(m.Removed))
	save := func(p string) {
		if _, done := saved[p]; !done {
			old, had := x.Get(p)
			saved[p] = undo{old, had}
		}
	}
	before := *d
	for _, p := range m.Removed {
		save(p)
		if old, ok := x.Get(p); ok {
			d.Remove(old)
			x.Delete(p)
		}
	}
	for _, w := range m.Items {
		save(w.Path)
		it := ToItem(w)
		old, had := x.Get(w.Path)
		d.Replace(old, had, it, true)
		x.Set(it)
	}
	if got := d.Hash(); !bytes.Equal(got[:], m.Digest) {
		for p, u := range saved {
			if u.had {
				x.Set(u.it)
			} else {
				x.Delete(p)
			}
		}
		*d = before
		return nil, fmt.Errorf("incremental announcement of version %d does not match the base this node holds", m.Version)
	}
	paths := make([]string, 0, len(saved))
	for p := range saved {
		paths = append(paths, p)
	}
	sort.Strings(paths)
	return paths, nil
}

func sameItem(a, b index.Item) bool {
	return a.Kind == b.Kind && a.Mode == b.Mode && a.Size == b.Size && a.MTime == b.MTime && a.Hash == b.Hash && a.Deleted == b.Deleted
}
