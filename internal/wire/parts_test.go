package wire

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"testing"

	"pbxsync/internal/index"
)

// TestSplitAndAssemble: an announcement too large for one part goes as
// several, each a valid message of about the asked size that travels
// through the codec; assembled they are the announcement again. A small
// announcement stays one message without Part/Parts (what agents before
// parts read).
func TestSplitAndAssemble(t *testing.T) {
	m := sampleAnnounce(3000)
	m.Base, m.Removed, m.Digest = 6, []string{"gone.conf"}, make([]byte, index.HashSize)
	m.Inline = []Inline{{Hash: make([]byte, 32), Encoding: EncodingZstd, Data: []byte("x")}}
	m.Unreadable = []string{"root-only.conf"}
	if parts := Split(m, PartBytes); len(parts) != 1 || parts[0] != m {
		t.Fatalf("a small announcement split into %d parts", len(parts))
	}
	// whole up to WholeParts parts' worth (what agents before parts
	// sent whole), in parts above
	total := 0
	for i := range m.Items {
		total += itemWireSize(&m.Items[i])
	}
	if n := len(Split(m, total/WholeParts+1)); n != 1 {
		t.Fatalf("%d parts for %d bytes of items at %d per part", n, total, total/WholeParts+1)
	}
	if n := len(Split(m, total/WholeParts-1)); n <= WholeParts {
		t.Fatalf("%d parts for %d bytes of items at %d per part", n, total, total/WholeParts-1)
	}
	const limit = 8 << 10
	parts := Split(m, limit)
	if len(parts) < 5 {
		t.Fatalf("%d parts of about %d bytes for %d items", len(parts), limit, len(m.Items))
	}
	c := newCodec(t)
	var asm Assembler
	var whole *Announce
	for i, p := range parts {
		raw, err := json.Marshal(p)
		if err != nil {
			t.Fatal(err)
		}
		if len(raw) > limit*3/2 {
			t.Errorf("part %d: %d bytes of JSON, asked about %d", i, len(raw), limit)
		}
		var buf bytes.Buffer
		if err := c.Write(&buf, p); err != nil {
			t.Fatalf("part %d: %v", i, err)
		}
		got, err := c.Read(&buf)
		if err != nil {
			t.Fatalf("part %d does not decode: %v", i, err)
		}
		w, err := asm.Add(got.(*Announce))
		if err != nil {
			t.Fatal(err)
		}
		if (w != nil) != (i == len(parts)-1) {
			t.Fatalf("part %d of %d: assembled %v", i, len(parts), w != nil)
		}
		whole = w
	}
	if !reflect.DeepEqual(whole, m) {
		t.Fatal("the assembled announcement differs from the one split")
	}
	if parts[0].Parts == 0 || m.Parts != 0 || len(m.Items) != 3001 {
		t.Fatal("Split changed the announcement it split")
	}
}

// TestAssemblerOrders: parts complete an announcement whatever their
// order, duplicates and interleaving (the same announcement sent on two
// connections, or repeated), and only when every part is present; a newer
// version replaces an older one, a stale part is dropped with an error.
func TestAssemblerOrders(t *testing.T) {
	v7 := sampleAnnounce(600)
	v7.Removed, v7.Unreadable = []string{"gone.conf"}, []string{"root-only.conf"}
	p7 := Split(v7, 4<<10)
	v8 := sampleAnnounce(600)
	v8.Version = 8
	p8 := Split(v8, 4<<10)
	v3 := sampleAnnounce(600)
	v3.Version = 3 // a restarted source counting again
	p3 := Split(v3, 4<<10)
	n := len(p7)
	if n < 6 || len(p8) != n || len(p3) != n {
		t.Fatalf("%d, %d and %d parts; want as many, at least 6", n, len(p8), len(p3))
	}
	type step struct {
		m       *Announce
		whole   *Announce // what Add must return, nil: nothing yet
		wantErr bool
	}
	in := func(ps []*Announce, idx ...int) []step {
		out := make([]step, len(idx))
		for i, k := range idx {
			out[i] = step{m: ps[k]}
		}
		return out
	}
	done := func(s []step, whole *Announce) []step {
		s[len(s)-1].whole = whole
		return s
	}
	seq := func(from, to int) []int { // from..to-1
		var out []int
		for i := from; i < to; i++ {
			out = append(out, i)
		}
		return out
	}
	rev := func() []int {
		out := seq(0, n)
		slices.Reverse(out)
		return out
	}
	twice := func(idx []int) []int {
		var out []int
		for _, i := range idx {
			out = append(out, i, i)
		}
		return out
	}
	cat := func(ss ...[]step) []step { return slices.Concat(ss...) }
	small := sampleAnnounce(3)
	small.Version = 9
	cases := map[string][]step{
		"in order":   done(in(p7, seq(0, n)...), v7),
		"reversed":   done(in(p7, rev()...), v7),
		"last first": done(in(p7, append([]int{n - 1}, seq(0, n-1)...)...), v7),
		"every part twice": cat(
			in(p7, twice(seq(0, n-1))...),
			done(in(p7, n-1), v7),
			in(p7, n-1), // after it completed: a new assembly, incomplete
		),
		"two copies interleaved": cat(
			in(p7, 0, 0, 1, 2, 1, 3, 2),
			done(in(p7, seq(3, n)...), v7),
			in(p7, seq(3, n)...), // the second copy's rest: a new assembly, incomplete
		),
		"a gap waits for the missing part": cat(
			in(p7, append([]int{0}, seq(2, n)...)...),
			done(in(p7, 1), v7),
		),
		"a newer version replaces the older": cat(
			in(p7, seq(0, n-1)...),
			in(p8, 0, 1),
			[]step{{m: p7[n-1], wantErr: true}}, // stale: v7 was replaced
			done(in(p8, seq(2, n)...), v8),
		),
		"a newer version's later part replaces too": cat(
			in(p7, 0, 1),
			in(p8, seq(1, n)...),
			[]step{{m: p7[2], wantErr: true}},
			done(in(p8, 0), v8),
		),
		"an older version's first part restarts": cat(
			in(p7, 0, 1),
			[]step{{m: p3[1], wantErr: true}},
			done(in(p3, seq(0, n)...), v3),
		),
		"a whole announcement passes, and drops older parts": cat(
			in(p7, 0, 1),
			[]step{{m: small, whole: small}},
			[]step{{m: p7[2], whole: nil}}, // starts again: incomplete
			done(in(p7, 0, 1), nil),
		),
		"an older whole announcement keeps the assembly": cat(
			in(p8, seq(0, n-1)...),
			[]step{{m: v7, whole: v7}},
			done(in(p8, n-1), v8),
		),
	}
	for name, steps := range cases {
		t.Run(name, func(t *testing.T) {
			var a Assembler
			for i, s := range steps {
				got, err := a.Add(s.m)
				if (err != nil) != s.wantErr {
					t.Fatalf("step %d (part %d of version %d): error %v, want error %v", i, s.m.Part, s.m.Version, err, s.wantErr)
				}
				switch {
				case s.whole == nil && got != nil:
					t.Fatalf("step %d (part %d of version %d): completed version %d early", i, s.m.Part, s.m.Version, got.Version)
				case s.whole != nil && !reflect.DeepEqual(got, s.whole):
					t.Fatalf("step %d (part %d of version %d): got %v, want version %d whole", i, s.m.Part, s.m.Version, summary(got), s.whole.Version)
				}
			}
		})
		// the same with a sink: it gets the items of exactly the
		// announcement completed, in order, and the Assembler holds no
		// part the sink could have taken
		t.Run(name+" with a sink", func(t *testing.T) {
			var a Assembler
			sink := &recordSink{take: true}
			for i, s := range steps {
				got, streamed, err := a.AddTo(s.m, sink)
				if (err != nil) != s.wantErr {
					t.Fatalf("step %d (part %d of version %d): error %v, want error %v", i, s.m.Part, s.m.Version, err, s.wantErr)
				}
				if err := a.holdsOnlyAhead(); err != nil {
					t.Fatalf("step %d: %v", i, err)
				}
				switch {
				case s.whole == nil && got != nil:
					t.Fatalf("step %d (part %d of version %d): completed version %d early", i, s.m.Part, s.m.Version, got.Version)
				case s.whole == nil:
				case s.m.Parts == 0:
					if got != s.m || streamed {
						t.Fatalf("step %d: a whole announcement was not returned as it is (streamed %v)", i, streamed)
					}
				case !streamed || got.Items != nil:
					t.Fatalf("step %d: completed with %d items, streamed %v; want its items in the sink", i, len(got.Items), streamed)
				default:
					whole := *got
					whole.Items = sink.items
					if !reflect.DeepEqual(&whole, s.whole) {
						t.Fatalf("step %d (part %d of version %d): got %v with %d items in the sink, want version %d whole", i, s.m.Part, s.m.Version, summary(got), len(sink.items), s.whole.Version)
					}
				}
			}
		})
	}
}

// recordSink is a PartSink that takes (take) and records the items of
// the announcement begun last.
type recordSink struct {
	take           bool
	items          []Item
	begun, dropped int
}

func (s *recordSink) Begin(*Announce) bool {
	s.begun++
	s.items = nil
	return s.take
}

func (s *recordSink) Take(items []Item) { s.items = append(s.items, items...) }

func (s *recordSink) Drop() {
	s.dropped++
	s.items = nil
}

// holdsOnlyAhead checks that an Assembler with a sink holds the items of
// no part before the next one the sink takes, and that part is missing.
func (a *Assembler) holdsOnlyAhead() error {
	if a.sink == nil {
		return nil
	}
	for i := 0; i < a.next; i++ {
		if a.items[i] == nil || len(a.items[i]) > 0 {
			return fmt.Errorf("part %d, before the next one taken (%d): present %v, %d items held", i, a.next, a.items[i] != nil, len(a.items[i]))
		}
	}
	if a.next < len(a.items) && a.items[a.next] != nil {
		return fmt.Errorf("part %d is present but not taken", a.next)
	}
	return nil
}

func summary(m *Announce) string {
	if m == nil {
		return "nothing"
	}
	return fmt.Sprintf("version %d with %d items, part %d of %d", m.Version, len(m.Items), m.Part, m.Parts)
}

// TestAssemblerBound: parts whose items pass the bound (MaxAssembledItems,
// here 10) drop the announcement; parts that Validate would refuse are
// refused.
func TestAssemblerBound(t *testing.T) {
	a := Assembler{limit: 10}
	four := make([]Item, 4)
	for i, wantErr := range []bool{false, false, true} {
		_, err := a.Add(&Announce{Job: "conf", Version: 4, Part: uint32(i), Parts: 4, Items: four})
		if (err != nil) != wantErr {
			t.Fatalf("part %d (%d items so far): error %v, want error %v", i, 4*i, err, wantErr)
		}
	}
	if a.count != 0 || a.items != nil || a.limit != 10 {
		t.Fatalf("the assembly was kept: %d items", a.count)
	}
	for _, m := range []*Announce{{Part: 2, Parts: 2}, {Part: 0, Parts: MaxParts + 1}} {
		if w, err := a.Add(m); err == nil || w != nil {
			t.Errorf("part %d of %d taken", m.Part, m.Parts)
		}
	}
}

// FuzzAssembler: any sequence of parts (from a few announcements, in any
// order, repeated) never panics, and what it completes is one whole
// announcement: no Part/Parts, its items those of its parts in order,
// within the bound.
func FuzzAssembler(f *testing.F) {
	f.Add([]byte{0, 1, 2, 3})
	f.Add([]byte{3, 2, 1, 0, 0, 1})
	f.Add([]byte{0x10, 0x21, 0x02, 0x13, 0x40, 0x01})
	f.Fuzz(func(t *testing.T, ops []byte) {
		var a, b Assembler
		sink := &recordSink{}
		for _, op := range ops {
			// low 2 bits: the part; next 2: the version; bit 4: 3 or 4 parts;
			// bit 5: a base; bit 6: a whole announcement
			part, version := uint32(op&3), uint64(op>>2&3)+1
			parts := uint32(3 + op>>4&1)
			m := &Announce{Job: "conf", Version: version, Part: part, Parts: parts}
			if op&0x20 != 0 {
				m.Base = 1
			}
			if op&0x40 != 0 {
				m.Part, m.Parts = 0, 0
			}
			m.Items = []Item{{Path: fmt.Sprintf("v%d-b%d-n%d-p%d", m.Version, m.Base, m.Parts, m.Part)}}
			// b: the same with a sink that takes the complete announcements
			sink.take = m.Base == 0
			bGot, streamed, bErr := b.AddTo(m, sink)
			got, err := a.Add(m)
			if (bErr != nil) != (err != nil) || (bGot != nil) != (got != nil) {
				t.Fatalf("op %#x: with a sink %v, %v; without %v, %v", op, summary(bGot), bErr, summary(got), err)
			}
			if err := b.holdsOnlyAhead(); err != nil {
				t.Fatalf("op %#x: %v", op, err)
			}
			if got == nil {
				continue
			}
			if want := op&0x40 == 0 && m.Base == 0; streamed != want {
				t.Fatalf("op %#x: streamed %v, want %v", op, streamed, want)
			}
			if streamed && !reflect.DeepEqual(sink.items, got.Items) {
				t.Fatalf("op %#x: the sink took %d items, want %d", op, len(sink.items), len(got.Items))
			}
			if err != nil || got.Part != 0 || got.Parts != 0 {
				t.Fatalf("op %#x: %v, part %d of %d", op, err, got.Part, got.Parts)
			}
			if op&0x40 != 0 {
				if got != m {
					t.Fatalf("op %#x: a whole announcement was not returned as it is", op)
				}
				continue
			}
			if uint32(len(got.Items)) != parts {
				t.Fatalf("op %#x: completed with %d items of %d parts", op, len(got.Items), parts)
			}
			for i, it := range got.Items {
				if want := fmt.Sprintf("v%d-b%d-n%d-p%d", got.Version, got.Base, parts, i); it.Path != want {
					t.Fatalf("op %#x: item %d is %s, want %s", op, i, it.Path, want)
				}
			}
		}
	})
}

// TestPartValidation: parts that could be mistaken for a whole index or
// that carry the last part's lists early are refused.
func TestPartValidation(t *testing.T) {
	bad := map[string]*Announce{
		"one part":            {Parts: 1},
		"too many parts":      {Parts: MaxParts + 1},
		"part beyond parts":   {Part: 3, Parts: 3},
		"early removed paths": {Part: 0, Parts: 2, Removed: []string{"x"}},
		"early inline":        {Part: 0, Parts: 2, Inline: []Inline{{Hash: make([]byte, 32), Encoding: EncodingZstd}}},
	}
	for name, m := range bad {
		m.Job, m.Origin = "conf", "a"
		if err := m.Validate(); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	ok := &Announce{Job: "conf", Origin: "a", Base: 3, Part: 0, Parts: 2}
	if err := ok.Validate(); err != nil {
		t.Errorf("a first part of an incremental announcement (its digest comes last): %v", err)
	}
}

// TestSplitWithinMaxParts: an index that would take more than MaxParts
// parts of the asked size goes in larger parts, at most MaxParts, each
// valid; assembled they are the announcement again.
func TestSplitWithinMaxParts(t *testing.T) {
	m := sampleAnnounce(3000)
	parts := Split(m, 1)
	if len(parts) > MaxParts || len(parts) < MaxParts/2 {
		t.Fatalf("%d parts, want at most %d (and not far fewer)", len(parts), MaxParts)
	}
	var a Assembler
	var whole *Announce
	for i, p := range parts {
		if err := p.Validate(); err != nil {
			t.Fatalf("part %d: %v", i, err)
		}
		w, err := a.Add(p)
		if err != nil {
			t.Fatal(err)
		}
		whole = w
	}
	if !reflect.DeepEqual(whole, m) {
		t.Fatal("the assembled announcement differs from the one split")
	}
}

// TestSplitFromIsSplit: an announcement whose items are made on demand
// goes as the same messages as the one holding them, parts or whole, and
// an empty index as one message with an empty (not null) item list.
func TestSplitFromIsSplit(t *testing.T) {
	x := sampleIndex(3000)
	m := &Announce{Job: "conf", Version: 7, Origin: "a", Items: FromIndex(x), Removed: []string{"gone.conf"},
		Inline: []Inline{{Hash: make([]byte, 32), Encoding: EncodingZstd, Data: []byte("x")}}, Unreadable: []string{"root-only.conf"}}
	lazy := *m
	lazy.Items = nil
	for _, limit := range []int{PartBytes, 64 << 10, 4 << 10, 1} {
		want := Split(m, limit)
		got := slices.Collect(SplitFrom(&lazy, IndexItems(x), limit))
		if len(got) != len(want) {
			t.Fatalf("limit %d: %d parts, Split made %d", limit, len(got), len(want))
		}
		for i := range want {
			if !reflect.DeepEqual(got[i], want[i]) {
				t.Fatalf("limit %d: part %d differs:\n got %+v\nwant %+v", limit, i, got[i].Items[:1], want[i].Items[:1])
			}
		}
	}
	empty := slices.Collect(SplitFrom(&lazy, IndexItems(index.Index{}), PartBytes))
	if len(empty) != 1 || empty[0].Items == nil || len(empty[0].Items) != 0 || empty[0].Parts != 0 {
		t.Fatalf("empty index: %+v", empty)
	}
	if raw, _ := json.Marshal(empty[0]); !bytes.Contains(raw, []byte(`"items":[]`)) {
		t.Fatalf("empty index encodes as %s", raw)
	}
}

// TestSplitFromHoldsOnePart: SplitFrom makes a part only when it is asked
// for: when part i is handed out, the items made so far (after sizing)
// are those of parts 0..i, not the whole index.
func TestSplitFromHoldsOnePart(t *testing.T) {
	x := sampleIndex(5000)
	src := IndexItems(x)
	passes, made := 0, 0
	counted := func(yield func(Item) bool) {
		passes++
		for it := range src {
			if passes == 2 {
				made++
			}
			if !yield(it) {
				return
			}
		}
	}
	m := &Announce{Job: "conf", Version: 7, Origin: "a"}
	upTo, n := 0, 0
	for p := range SplitFrom(m, counted, 16<<10) {
		upTo += len(p.Items)
		if made != upTo {
			t.Fatalf("part %d handed out after %d items were made, want %d (the items of parts up to it)", p.Part, made, upTo)
		}
		n++
	}
	if n < 10 || upTo != x.Len() {
		t.Fatalf("%d parts of %d items, index of %d", n, upTo, x.Len())
	}
}

// TestSplitFromRefusesChangedItems: items that yield a different number of
// items when the parts are filled than when they were sized never make a
// complete announcement: its last part is not handed out.
func TestSplitFromRefusesChangedItems(t *testing.T) {
	x := sampleIndex(3000)
	for _, delta := range []int{-1, +1} {
		for _, limit := range []int{4 << 10, PartBytes} {
			passes := 0
			changing := func(yield func(Item) bool) {
				passes++
				n := 0
				for it := range IndexItems(x) {
					if passes == 2 && delta < 0 && n == x.Len()-1 {
						return
					}
					if !yield(it) {
						return
					}
					n++
				}
				if passes == 2 && delta > 0 {
					yield(Item{Path: "zzz-extra.conf", Kind: uint8(index.KindFile), Hash: make([]byte, index.HashSize)})
				}
			}
			for p := range SplitFrom(&Announce{Job: "conf", Version: 7}, changing, limit) {
				if p.Parts == 0 || p.Part == p.Parts-1 {
					t.Fatalf("items %+d, limit %d: the last part (%d of %d, %d items) was handed out", delta, limit, p.Part, p.Parts, len(p.Items))
				}
			}
		}
	}
}

// TestEncodeRefusesAnnounceWithoutItems: a complete announcement whose
// items are nil (made to go through SplitFrom) is never encoded: a
// target would take it for an empty tree. An empty list, an incremental
// announcement without changed items and SplitFrom's parts all encode.
func TestEncodeRefusesAnnounceWithoutItems(t *testing.T) {
	c := newCodec(t)
	lazy := &Announce{Job: "conf", Version: 7, Origin: "a"}
	if _, err := c.Encode(lazy); !errors.Is(err, ErrNoItems) {
		t.Fatalf("encoding a complete announcement without items: %v, want ErrNoItems", err)
	}
	for _, m := range []*Announce{
		{Job: "conf", Version: 7, Origin: "a", Items: []Item{}},
		{Job: "conf", Version: 8, Origin: "a", Base: 7, Removed: []string{"gone.conf"}, Digest: make([]byte, index.HashSize)},
	} {
		if _, err := c.Encode(m); err != nil {
			t.Errorf("%+v: %v", m, err)
		}
	}
	for p := range SplitFrom(lazy, IndexItems(index.Index{}), PartBytes) {
		if _, err := c.Encode(p); err != nil {
			t.Errorf("SplitFrom's message of an empty index: %v", err)
		}
	}
}
