package wire

import (
	"fmt"
	"iter"
)

// MaxParts bounds the parts of one announcement, and MaxAssembledItems the
// items of all of them: the most a target holds while it assembles one.
const (
	MaxParts          = 256
	MaxAssembledItems = 16 * MaxItems
)

// PartBytes is the size Split aims at for one part: well below
// MaxDecoded, so that a message never comes near the limit, and small
// enough that a target, which admits a complete announcement part by
// part (PartSink), holds a few thousand decoded items at a time, not
// most of a 100k-file index. Split makes parts larger when an index
// would otherwise take more than MaxParts of them. Encoding a part holds
// its JSON and its zstd frame at once, and encoding/json keeps its
// largest buffer pooled (a 2 MiB part held ~12 MB at a source's peak and
// ~6 MB decoding it at a target's); a 100,000-file index goes in ~50
// parts of 512 KiB.
const PartBytes = 512 << 10

// WholeParts is how many parts' worth of items Split still sends as one
// message: up to 16 MiB at PartBytes, as before there were parts, so an
// agent that predates parts syncs every job it synced before.
const WholeParts = 32

// itemWireSize estimates the encoded bytes of an item (JSON, before
// compression): its path and version vector plus the fixed fields.
func itemWireSize(it *Item) int {
	n := 160 + 2*len(it.Path)
	for _, c := range it.Version {
		n += 32 + 2*len(c.Node)
	}
	return n
}

// Split returns m as one message when its items fit in about WholeParts
// × maxBytes, else as parts (Part, Parts set) of about maxBytes each, or
// as many larger ones as MaxParts allows: shallow copies that share m's
// item slice. Removed, Digest, Inline and Unreadable go with the last
// part. m is not changed.
func Split(m *Announce, maxBytes int) []*Announce {
	sizes := make([]int, len(m.Items))
	for i := range m.Items {
		sizes[i] = itemWireSize(&m.Items[i])
	}
	bounds := partBounds(sizes, maxBytes)
	if bounds == nil {
		return []*Announce{m}
	}
	parts := make([]*Announce, len(bounds))
	start := 0
	for i, end := range bounds {
		parts[i] = partOf(m, m.Items[start:end:end], i, len(bounds))
		start = end
	}
	return parts
}

// SplitFrom is Split of an announcement whose items are made on demand:
// m's own Items are ignored, items yields them (in path order) and is
// ranged over twice, first to size the parts, then to fill them; it must
// yield the same items both times. Each part is made only when the caller
// asks for it, so a caller that sends (encodes) each part before it takes
// the next holds one part's items at a time, never the whole index
// (100,000 wire items are ~13 MB). Should items yield a different number
// of items the second time, the last part is never yielded: a target
// assembles nothing from an incomplete announcement, rather than take a
// wrong one.
func SplitFrom(m *Announce, items iter.Seq[Item], maxBytes int) iter.Seq[*Announce] {
	return func(yield func(*Announce) bool) {
		var sizes []int32
		for it := range items {
			sizes = append(sizes, int32(min(itemWireSize(&it), 1<<30)))
		}
		bounds := partBounds(sizes, maxBytes)
		whole := bounds == nil
		if whole {
			bounds = []int{len(sizes)}
		}
		part := func(i int, items []Item) *Announce {
			if whole {
				cp := *m
				cp.Items = items
				return &cp
			}
			return partOf(m, items, i, len(bounds))
		}
		i, k := 0, 0
		cur := make([]Item, 0, bounds[0])
		for it := range items {
			cur = append(cur, it)
			k++
			if k == bounds[i] && i < len(bounds)-1 {
				if !yield(part(i, cur)) {
					return
				}
				i++
				cur = make([]Item, 0, bounds[i]-k)
			}
		}
		if i == len(bounds)-1 && k == len(sizes) {
			yield(part(i, cur))
		}
	}
}

// partOf is part i of n of m, holding items: a shallow copy of m whose
// Removed, Digest, Inline and Unreadable go with the last part only.
func partOf(m *Announce, items []Item, i, n int) *Announce {
	p := *m
	p.Items = items
	p.Part, p.Parts = uint32(i), uint32(n)
	if i < n-1 {
		p.Removed, p.Digest, p.Inline, p.Unreadable = nil, nil, nil, nil
	}
	return &p
}

// partBounds returns the end of each part's items, given the estimated
// wire size of each item, or nil when they go as one message (about
// WholeParts × maxBytes or less, or a single part).
func partBounds[S int | int32](sizes []S, maxBytes int) []int {
	total, biggest := 0, 0
	for _, n := range sizes {
		total, biggest = total+int(n), max(biggest, int(n))
	}
	if total <= WholeParts*maxBytes {
		return nil
	}
	// a part closes with more than maxBytes-biggest bytes: fewer than
	// MaxParts-1 of them, and the last
	maxBytes = max(maxBytes, total/(MaxParts-1)+biggest)
	var bounds []int // end of each part's items
	size := 0
	for i, n := range sizes {
		if size+int(n) > maxBytes && size > 0 {
			bounds = append(bounds, i)
			size = 0
		}
		size += int(n)
	}
	if len(bounds) == 0 {
		return nil
	}
	return append(bounds, len(sizes))
}

// PartSink takes the items of an announcement's parts one part at a
// time, in part order (which Split makes path order), as they can be
// taken: an Assembler with a sink holds a part only while a part before
// it is missing, never the whole announcement.
type PartSink interface {
	// Begin tells the sink the assembly of first's announcement starts
	// (first is its first part to arrive, not necessarily part 0). The
	// sink reports whether it takes that announcement's items; if not,
	// the Assembler keeps them and returns them whole.
	Begin(first *Announce) bool
	// Take gets the items of the next part, in part order. The sink may
	// keep the slice (the caller must not change it).
	Take(items []Item)
	// Drop says the announcement begun will not complete (replaced,
	// refused): what the sink took of it is to be let go.
	Drop()
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
	// sink, when set, takes the parts' items in order (see AddTo); next
	// is the index of the part it takes next.
	sink PartSink
	next int
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
	out, _, err := a.AddTo(m, nil)
	return out, err
}

// AddTo is Add with a sink for the items of split announcements: when
// sink (not nil) begins an announcement (see PartSink.Begin), each part's
// items go to it as soon as every part before it is present, and are not
// kept; a part out of order is held until then. The completed
// announcement is then returned with no Items (streamed is true: its
// items are the sink's); everything else (Add's order, duplicate and
// bound rules) is as Add. A whole announcement (no Parts) never goes to
// the sink. The sink must be the same for every part of an announcement.
func (a *Assembler) AddTo(m *Announce, sink PartSink) (out *Announce, streamed bool, err error) {
	if m.Parts == 0 {
		if a.items != nil && m.Version >= a.key.version {
			a.reset()
		}
		return m, false, nil
	}
	if m.Parts > MaxParts || m.Part >= m.Parts {
		return nil, false, fmt.Errorf("part %d of %d of version %d: want 2 to %d parts", m.Part, m.Parts, m.Version, MaxParts)
	}
	if k := keyOf(m); a.items == nil || k != a.key {
		if a.items != nil && m.Part != 0 && m.Version <= a.key.version {
			return nil, false, fmt.Errorf("part %d of %d of version %d (base %d): not of version %d (base %d, %d parts) being assembled; dropped", m.Part, m.Parts, m.Version, m.Base, a.key.version, a.key.base, a.key.parts)
		}
		a.reset()
		a.key, a.items = k, make([][]Item, m.Parts)
		if sink != nil && sink.Begin(m) {
			a.sink = sink
		}
	}
	if a.items[m.Part] != nil {
		return nil, false, nil // a duplicate
	}
	limit := a.limit
	if limit == 0 {
		limit = MaxAssembledItems
	}
	if a.count+len(m.Items) > limit {
		a.reset()
		return nil, false, fmt.Errorf("announcement of version %d: more than %d items in its parts; dropped", m.Version, limit)
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
	a.feed()
	if a.have < len(a.items) {
		return nil, false, nil
	}
	out = a.last
	out.Part, out.Parts = 0, 0
	if streamed = a.sink != nil; streamed {
		out.Items = nil
		a.sink = nil // completed: not dropped
	} else {
		out.Items = make([]Item, 0, a.count)
		for _, items := range a.items {
			out.Items = append(out.Items, items...)
		}
	}
	a.reset()
	return out, streamed, nil
}

// feed gives the sink, if any, every part present from the next one on,
// in order, and lets go of their items.
func (a *Assembler) feed() {
	if a.sink == nil {
		return
	}
	for ; a.next < len(a.items) && a.items[a.next] != nil; a.next++ {
		if items := a.items[a.next]; len(items) > 0 {
			a.sink.Take(items)
			a.items[a.next] = []Item{} // taken: present, not held
		}
	}
}

// reset drops what is being assembled (and tells the sink).
func (a *Assembler) reset() {
	if a.sink != nil {
		a.sink.Drop()
	}
	*a = Assembler{limit: a.limit}
}
