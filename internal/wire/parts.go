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

// Assembler puts the parts of announcements back together, one
// announcement at a time (the parts of one are sent back to back on one
// stream). The zero value is ready.
type Assembler struct {
	cur *Announce
}

// Add takes one message. It returns the whole announcement when m is one
// or completes one, nil while parts are missing. A part that does not
// continue the announcement being assembled (another version, a gap)
// drops it: the source repeats unanswered announcements, whole.
func (a *Assembler) Add(m *Announce) (*Announce, error) {
	if m.Parts == 0 {
		a.cur = nil
		return m, nil
	}
	if m.Part == 0 {
		cp := *m
		cp.Items = append([]Item(nil), m.Items...)
		a.cur = &cp
	} else {
		c := a.cur
		if c == nil || c.Job != m.Job || c.Version != m.Version || c.Base != m.Base || c.Parts != m.Parts || c.Part+1 != m.Part {
			a.cur = nil
			return nil, fmt.Errorf("part %d of %d of version %d does not continue the announcement being assembled", m.Part, m.Parts, m.Version)
		}
		if len(c.Items)+len(m.Items) > MaxAssembledItems {
			a.cur = nil
			return nil, fmt.Errorf("announcement of version %d: more than %d items", m.Version, MaxAssembledItems)
		}
		c.Items = append(c.Items, m.Items...)
		c.Part = m.Part
		c.Removed, c.Digest, c.Inline, c.Unreadable = m.Removed, m.Digest, m.Inline, m.Unreadable
	}
	if a.cur.Part+1 < a.cur.Parts {
		return nil, nil
	}
	out := a.cur
	a.cur = nil
	out.Part, out.Parts = 0, 0
	return out, nil
}
