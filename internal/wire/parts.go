package wire

import "fmt"

// MaxParts bounds the parts of one announcement, and MaxAssembledItems the
// items of all of them: the most a target holds while it assembles one.
const (
	MaxParts          = 256
	MaxAssembledItems = 16 * MaxItems
)

// PartBytes is the size Split aims at for one part: well below
// MaxDecoded, so that a message never comes near the limit.
const PartBytes = 16 << 20

// itemWireSize estimates the encoded bytes of an item (JSON, before
// compression): its path and version vector plus the fixed fields.
func itemWireSize(it *Item) int {
	n := 160 + 2*len(it.Path)
	for _, c := range it.Version {
		n += 32 + 2*len(c.Node)
	}
	return n
}

// Split returns m as one message when its items fit in about maxBytes,
// else as parts (Part, Parts set) of about maxBytes each: shallow copies
// that share m's item slice. Removed, Digest, Inline and Unreadable go with
// the last part. m is not changed.
func Split(m *Announce, maxBytes int) []*Announce {
	var bounds []int // end of each part's items
	size := 0
	for i := range m.Items {
		n := itemWireSize(&m.Items[i])
		if size+n > maxBytes && size > 0 {
			bounds = append(bounds, i)
			size = 0
		}
		size += n
	}
	if len(bounds) == 0 {
		return []*Announce{m}
	}
	bounds = append(bounds, len(m.Items))
	parts := make([]*Announce, len(bounds))
	start := 0
	for i, end := range bounds {
		p := *m
		p.Items = m.Items[start:end:end]
		p.Part, p.Parts = uint32(i), uint32(len(bounds))
		if i < len(bounds)-1 {
			p.Removed, p.Digest, p.Inline, p.Unreadable = nil, nil, nil, nil
		}
		parts[i] = &p
		start = end
	}
	return parts
}

// Assembler puts the parts of announcements back together. The parts of
// one announcement may arrive out of order, twice, or interleaved with
// another copy of it (both peers dial each other, and a source that
// switches connections, or repeats an unanswered announcement, sends on
// the newer one): it keeps each part by its index and completes the
// announcement when every index is present. It assembles one announcement
// at a time, identified by (job, version, base, parts), so it holds at
// most MaxParts parts of MaxAssembledItems items in all. The zero value is
// ready.
type Assembler struct {
	key   partsKey
	items [][]Item  // by part index, nil where missing; len(items) == key.parts while assembling
	have  int       // parts present
	count int       // items present
	last  *Announce // the last part, once present: its fields (Removed, Digest, …) complete the whole
	limit int       // the bound on items; 0: MaxAssembledItems (tests set less)
}

// partsKey identifies the announcement whose parts are being assembled.
type partsKey struct {
	job     string
	version uint64
	base    uint64
	parts   uint32
}

func keyOf(m *Announce) partsKey {
	return partsKey{job: m.Job, version: m.Version, base: m.Base, parts: m.Parts}
}

// Add takes one message. It returns the whole announcement when m is one
// or completes one, nil while parts are missing; a part already present
// is ignored. A part of another announcement replaces the one being
// assembled when it is newer (a higher version) or its first part (a
// restarted source may count from 1 again); any other part of another
// announcement is stale, and Add drops it with an error (the source
// repeats unanswered announcements, whole). So does a part that would take
// the assembled items past MaxAssembledItems, with what was assembled. A
// whole announcement (no Parts) is returned as it is, and drops an
// assembly of no newer version. Add keeps the item slices of the parts it
// holds until the announcement completes; the caller must not change them.
func (a *Assembler) Add(m *Announce) (*Announce, error) {
	if m.Parts == 0 {
		if a.items != nil && m.Version >= a.key.version {
			a.reset()
		}
		return m, nil
	}
	if m.Parts > MaxParts || m.Part >= m.Parts {
		return nil, fmt.Errorf("part %d of %d of version %d: want 2 to %d parts", m.Part, m.Parts, m.Version, MaxParts)
	}
	if k := keyOf(m); a.items == nil || k != a.key {
		if a.items != nil && m.Part != 0 && m.Version <= a.key.version {
			return nil, fmt.Errorf("part %d of %d of version %d (base %d): not of version %d (base %d, %d parts) being assembled; dropped", m.Part, m.Parts, m.Version, m.Base, a.key.version, a.key.base, a.key.parts)
		}
		a.reset()
		a.key, a.items = k, make([][]Item, m.Parts)
	}
	if a.items[m.Part] != nil {
		return nil, nil // a duplicate
	}
	limit := a.limit
	if limit == 0 {
		limit = MaxAssembledItems
	}
	if a.count+len(m.Items) > limit {
		a.reset()
		return nil, fmt.Errorf("announcement of version %d: more than %d items in its parts; dropped", m.Version, limit)
	}
	if m.Items == nil {
		a.items[m.Part] = []Item{} // present, without items
	} else {
		a.items[m.Part] = m.Items
	}
	a.have++
	a.count += len(m.Items)
	if m.Part+1 == m.Parts {
		last := *m
		a.last = &last
	}
	if a.have < len(a.items) {
		return nil, nil
	}
	out := a.last
	out.Items = make([]Item, 0, a.count)
	for _, items := range a.items {
		out.Items = append(out.Items, items...)
	}
	out.Part, out.Parts = 0, 0
	a.reset()
	return out, nil
}

// reset drops what is being assembled.
func (a *Assembler) reset() {
	*a = Assembler{limit: a.limit}
}
