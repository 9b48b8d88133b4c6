package syncer

import (
	"fmt"
	"io/fs"
	"log/slog"
	"math/rand/v2"
	"reflect"
	"testing"

	"pbxsync/hostmon"
	"pbxsync/internal/index"
	"pbxsync/internal/wire"
)

// TestPartAdmission: a complete announcement sent in parts, admitted part
// by part as the Assembler hands them over (in any arrival order), gives
// what admit gives for the whole: the same want, refused paths and
// dropped bits, whether a refusal or a dropped bit comes in the first
// part, a later one, or none. When nothing is refused or changed, want is
// the announced index itself (one index, not two). Items out of path order
// are admitted in full at the end, with the same result.
func TestPartAdmission(t *testing.T) {
	t.Parallel()
	f, err := hostmon.NewFilter(nil, []string{"local-*.conf"})
	if err != nil {
		t.Fatal(err)
	}
	base := func() index.Index {
		x := index.New(0)
		for d := range 4 {
			dp := fmt.Sprintf("d%d", d)
			x.Set(dir(dp, 0o755, 1))
			for i := range 150 {
				it := file(fmt.Sprintf("%s/f%03d.conf", dp, i), fmt.Sprint(d, i), 0o644, 1)
				x.Set(it)
			}
		}
		return x
	}
	suid := func(it index.Item) index.Item {
		it.Mode |= fs.ModeSetuid
		return it
	}
	with := func(items ...index.Item) index.Index {
		x := base()
		for _, it := range items {
			x.Set(it)
		}
		return x
	}
	cases := map[string]struct {
		x        index.Index
		identity bool
		unsorted bool
	}{
		"all admitted":                     {x: base(), identity: true},
		"a refused name in the first part": {x: with(dir("a\x1bdir", 0o755, 1), file("a\x1bdir/in.conf", "x", 0o644, 1))},
		"an excluded file in a later part": {x: with(file("d3/local-x.conf", "x", 0o644, 1))},
		"a setuid file in a later part":    {x: with(suid(file("d2/agi", "x", 0o755, 1)))},
		"a setuid directory and below":     {x: with(suid(dir("d2/bin", 0o755, 1)), suid(file("d2/bin/x", "x", 0o755, 1)))},
		"items out of path order":          {x: with(file("d3/local-x.conf", "x", 0o644, 1)), unsorted: true},
		"out of order, all admitted":       {x: base(), identity: true, unsorted: true},
	}
	for name, tc := range cases {
		for _, order := range []string{"in order", "reversed"} {
			t.Run(name+", "+order, func(t *testing.T) {
				m := &wire.Announce{Job: "j", Version: 5, Origin: "a", Items: wire.FromIndex(tc.x)}
				if tc.unsorted {
					r := rand.New(rand.NewPCG(1, 2))
					r.Shuffle(len(m.Items), func(a, b int) { m.Items[a], m.Items[b] = m.Items[b], m.Items[a] })
				}
				parts := wire.Split(m, 2<<10)
				if len(parts) < 4 {
					t.Fatalf("%d parts", len(parts))
				}
				if order == "reversed" {
					for a, b := 0, len(parts)-1; a < b; a, b = a+1, b-1 {
						parts[a], parts[b] = parts[b], parts[a]
					}
				}
				j := &job{log: slog.New(slog.DiscardHandler), filter: f}
				j.admitting.j = j
				var asm wire.Assembler
				var whole *wire.Announce
				for _, p := range parts {
					out, streamed, err := asm.AddTo(p, &j.admitting)
					if err != nil {
						t.Fatal(err)
					}
					if out != nil {
						if !streamed || out.Items != nil {
							t.Fatalf("completed with %d items, streamed %v", len(out.Items), streamed)
						}
						whole = out
						j.admitting.complete = true
					}
				}
				if whole == nil {
					t.Fatal("never completed")
				}
				announced, ad, ok := j.admitting.result(whole.Version)
				if !ok {
					t.Fatal("no admission by parts")
				}
				full := admit(tc.x, f, false)
				if !index.SameItems(announced, tc.x) {
					t.Fatalf("the announced index differs: %d items, want %d", announced.Len(), tc.x.Len())
				}
				if !index.SameItems(ad.want, full.want) || !reflect.DeepEqual(ad.refused, full.refused) {
					t.Fatalf("admitted %d items, refused %v; admit gives %d, %v", ad.want.Len(), ad.refused, full.want.Len(), full.refused)
				}
				if !tc.unsorted && !reflect.DeepEqual(ad.dropped, full.dropped) {
					t.Fatalf("dropped bits of %q, admit drops %q", ad.dropped, full.dropped)
				}
				if !tc.unsorted && ad.want.Same(announced) != tc.identity {
					t.Fatalf("want is the announced index: %v, want %v", ad.want.Same(announced), tc.identity)
				}
				if _, _, again := j.admitting.result(whole.Version); again {
					t.Fatal("the result was kept after it was taken")
				}
			})
		}
	}
}

// TestPartAdmissionKeptWhileAssembling: an announcement handled while
// another is being assembled part by part (an older whole one, which the
// Assembler lets through) does not drop that assembly's admission; one
// completed and not read is let go.
func TestPartAdmissionKeptWhileAssembling(t *testing.T) {
	t.Parallel()
	f, err := hostmon.NewFilter(nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	x := index.New(0)
	for i := range 300 {
		it := file(fmt.Sprintf("f%03d.conf", i), fmt.Sprint(i), 0o644, 1)
		x.Set(it)
	}
	j := &job{log: slog.New(slog.DiscardHandler), filter: f}
	j.admitting.j = j
	parts := wire.Split(&wire.Announce{Job: "j", Version: 8, Origin: "a", Items: wire.FromIndex(x)}, 1<<10)
	var asm wire.Assembler
	add := func(m *wire.Announce) *wire.Announce {
		out, streamed, err := asm.AddTo(m, &j.admitting)
		if err != nil {
			t.Fatal(err)
		}
		if out != nil {
			j.admitting.complete = streamed
			(&filesAnnouncement{j: j, m: out}).done() // handled, not read
		}
		return out
	}
	add(parts[0])
	if out := add(&wire.Announce{Job: "j", Version: 7, Origin: "a"}); out == nil {
		t.Fatal("the older whole announcement was not let through")
	}
	var whole *wire.Announce
	for _, p := range parts[1:] {
		if out := add(p); out != nil {
			whole = out
		}
	}
	if whole == nil {
		t.Fatal("never completed")
	}
	if !j.admitting.announced.IsNil() {
		t.Fatal("a completed admission that was not read is kept")
	}
	// the same again, read this time
	for _, p := range parts {
		if out, _, _ := asm.AddTo(p, &j.admitting); out != nil {
			j.admitting.complete = true
		}
	}
	announced, _, ok := j.admitting.result(8)
	if !ok || !index.SameItems(announced, x) {
		t.Fatalf("admitted %d of %d items (by parts %v)", announced.Len(), x.Len(), ok)
	}
}

// TestRepeatOfTakenDropped: while a target takes an announcement that came
// in parts, the parts of its repeats are recognised (the receiving
// goroutine drops them instead of queueing them, decoded, behind the
// take); parts of another announcement, or of the same version made
// again by a restarted source, and whole announcements are not.
func TestRepeatOfTakenDropped(t *testing.T) {
	t.Parallel()
	x := index.New(0)
	for i := range 300 {
		it := file(fmt.Sprintf("f%03d.conf", i), fmt.Sprint(i), 0o644, 1)
		x.Set(it)
	}
	m := &wire.Announce{Job: "j", Version: 8, Origin: "a", Time: 100, Items: wire.FromIndex(x)}
	parts := wire.Split(m, 1<<10)
	j := &job{}
	if j.repeatOfTaken(parts[0]) {
		t.Fatal("a part dropped while nothing is taken")
	}
	j.taking.Store(keyOfTaking(m))
	for i, p := range parts {
		if !j.repeatOfTaken(p) {
			t.Fatalf("part %d of the repeat not recognised", i)
		}
	}
	other := *parts[1]
	other.Time = 200 // a restarted source's own version 8
	newer := *parts[1]
	newer.Version = 9
	whole := *m
	whole.Items = nil
	for name, p := range map[string]*wire.Announce{"the same version made again": &other, "a newer version": &newer, "a whole announcement": &whole} {
		if j.repeatOfTaken(p) {
			t.Errorf("%s taken for a repeat", name)
		}
	}
	j.taking.Store(nil)
	if j.repeatOfTaken(parts[0]) {
		t.Fatal("a part dropped after the take")
	}
}
