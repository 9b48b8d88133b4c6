package syncer

import (
	"fmt"
	"io/fs"
	"log/slog"
	"testing"

	"pbxsync/hostmon"
	"pbxsync/internal/index"
	"pbxsync/internal/store"
	"pbxsync/internal/wire"
)

// TestHoldsAskedAnsweredFromTheIndex: the question "do you hold version
// N?" (an announcement against N itself, no changes), as a source asks it
// of a target after either restarts, is answered from the newest
// generation's index itself when it is N as announced and as admitted
// now: no copy of the index, no admission of every item (at 100k files
// both were most of a target's restart). When the target's filters now
// refuse a path, or the digest differs, it is admitted in full as before.
func TestHoldsAskedAnsweredFromTheIndex(t *testing.T) {
	t.Parallel()
	x := idx(dir("d", 0o755, 1), file("d/a.conf", "a", 0o644, 1), file("d/b.conf", "b", 0o644, 1))
	d := index.DigestOf(x).Hash()
	mk := func(exclude []string, it *index.Item) *job {
		f, err := hostmon.NewFilter(nil, exclude)
		if err != nil {
			t.Fatal(err)
		}
		latest := x.Clone()
		if it != nil {
			latest.Set(*it)
		}
		return &job{log: slog.New(slog.DiscardHandler), filter: f,
			latest: &store.Generation{Number: 3, SourceVersion: 7, Index: latest}}
	}
	ask := &wire.Announce{Job: "j", Version: 7, Base: 7, Digest: d[:]}

	j := mk(nil, nil)
	want, changed, ok := j.wantOf(ask)
	if !ok || !want.Same(j.latest.Index) || changed == nil || len(changed) != 0 {
		t.Fatalf("the question was not answered from the newest index itself (ok %v, same index %v, changed %v)", ok, want.Same(j.latest.Index), changed)
	}
	if j.plain.version != 7 {
		t.Fatalf("plain version %d after the question, want 7", j.plain.version)
	}

	j = mk([]string{"b.conf"}, nil) // the filters changed since the generation was made
	want, _, ok = j.wantOf(ask)
	if !ok || want.Same(j.latest.Index) {
		t.Fatal("a filter that now refuses a path did not make the question admitted in full")
	}
	if want.Has("d/b.conf") || want.Len() != 2 {
		t.Fatalf("want %v still holds the refused path", want)
	}

	suid := file("d/a.conf", "a", 0o755, 1)
	suid.Mode |= fs.ModeSetuid
	j = mk(nil, &suid)
	d2 := index.DigestOf(j.latest.Index).Hash()
	want, _, ok = j.wantOf(&wire.Announce{Job: "j", Version: 7, Base: 7, Digest: d2[:]})
	if a, _ := want.Get("d/a.conf"); !ok || want.Same(j.latest.Index) || a.Mode&fs.ModeSetuid != 0 {
		t.Fatal("a setuid bit the policy drops did not make the question admitted in full")
	}

	j = mk(nil, nil)
	other := index.Sum([]byte("other"))
	if want, _, ok := j.wantOf(&wire.Announce{Job: "j", Version: 7, Base: 7, Digest: other[:]}); ok && want.Same(j.latest.Index) {
		t.Fatal("a question whose digest differs was answered from the index")
	}
}

// TestIdentityAdmissionKeepsNoAnnouncedIndex: when a target's admission
// takes the source's index as it is, it keeps no copy of the announced
// index beside the newest generation's and its spare (one index less at
// 100k files): a complete announcement's announced map is want itself,
// an incremental one changes the spare directly. What it admits is what
// the full admission of the announced index gives, through a path its
// filters refuse (the announced index gets its own table again) and the
// announcements after it.
func TestIdentityAdmissionKeepsNoAnnouncedIndex(t *testing.T) {
	t.Parallel()
	f, err := hostmon.NewFilter(nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	j := &job{log: slog.New(slog.DiscardHandler), filter: f}
	src := idx(dir("d", 0o755, 1), file("d/a.conf", "a", 0o644, 1), file("d/b.conf", "b", 0o644, 1))
	applied := func(want index.Index, version uint64) {
		t.Helper()
		g := &store.Generation{Number: version, SourceVersion: version, Index: want}
		j.latest = g
		j.settleSpare()
		j.plain.gen = g
	}
	announce := func(version uint64, change func(x index.Index) []string) index.Index {
		t.Helper()
		paths := change(src)
		items, removed := wire.Changes(src, paths)
		d := index.DigestOf(src).Hash()
		want, _, ok := j.wantOf(&wire.Announce{Job: "j", Version: version, Base: version - 1, Items: items, Removed: removed, Digest: d[:]})
		if !ok {
			t.Fatalf("version %d: not admitted", version)
		}
		if ref := admit(src, f, false).want; !index.SameItems(ref, want) {
			t.Fatalf("version %d: admitted %v, the full admission gives %v", version, want, ref)
		}
		if j.latest != nil && want.Same(j.latest.Index) {
			t.Fatalf("version %d: want is the newest generation's index itself", version)
		}
		return want
	}

	d := index.DigestOf(src).Hash()
	want, _, ok := j.wantOf(&wire.Announce{Job: "j", Version: 1, Items: wire.FromIndex(src), Digest: d[:]})
	if !ok || !j.announced.Same(want) {
		t.Fatal("a complete announcement admitted as it is keeps its own announced map")
	}
	applied(want, 1)
	for v := uint64(2); v <= 4; v++ {
		want = announce(v, func(x index.Index) []string {
			x.Set(file("d/a.conf", fmt.Sprint("a", v), 0o644, int64(v)))
			return []string{"d/a.conf"}
		})
		if !j.announced.IsNil() {
			t.Fatalf("version %d: an announced index is kept beside the spare", v)
		}
		applied(want, v)
	}
	want = announce(5, func(x index.Index) []string { // refused here
		x.Set(file("d/x.swp", "swap", 0o644, 5))
		return []string{"d/x.swp"}
	})
	if j.announced.IsNil() || j.announced.Same(want) {
		t.Fatal("after a refused path the announced index has no table of its own")
	}
	applied(want, 5)
	for v := uint64(6); v <= 7; v++ {
		want = announce(v, func(x index.Index) []string {
			x.Set(file("d/b.conf", fmt.Sprint("b", v), 0o644, int64(v)))
			return []string{"d/b.conf"}
		})
		applied(want, v)
	}
	want = announce(8, func(x index.Index) []string {
		x.Delete("d/x.swp")
		return []string{"d/x.swp"}
	})
	applied(want, 8)
	want = announce(9, func(x index.Index) []string {
		x.Delete("d/b.conf")
		return []string{"d/b.conf"}
	})
	if want.Has("d/b.conf") {
		t.Fatal("a removed path is still wanted")
	}
}

// TestDigestCacheRetain: retain forgets every index but the ones kept, so
// that the cache is not the last holder of an index the job let go of
// (it kept a repeated complete announcement's admitted index, tens of MB
// at 100k files, all the idle time after an initial sync).
func TestDigestCacheRetain(t *testing.T) {
	t.Parallel()
	var c digestCache
	a, b, x := idx(file("a", "a", 0o644, 1)), idx(file("b", "b", 0o644, 1)), idx(file("x", "x", 0o644, 1))
	for _, m := range []index.Index{a, b, x} {
		c.of(m)
	}
	c.retain(a, index.Index{})
	for i := range c.x {
		if c.x[i].Same(b) || c.x[i].Same(x) {
			t.Fatal("retain kept an index it was not asked to keep")
		}
	}
	if d := c.of(a); d != index.DigestOf(a) {
		t.Fatal("the kept index's digest changed")
	}
	found := false
	for i := range c.x {
		found = found || c.x[i].Same(a)
	}
	if !found {
		t.Fatal("retain dropped the kept index")
	}
}

// TestLargeCompleteAnnouncementReleasesMemory: a complete announcement of
// a large index marks the job to hand its memory back to the system even
// when it makes no generation (a repeat of what the target holds left
// 100+ MB of decoded messages and maps in the heap, and in the RSS, of
// an idle target); a small one does not.
func TestLargeCompleteAnnouncementReleasesMemory(t *testing.T) {
	t.Parallel()
	f, err := hostmon.NewFilter(nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range []int{10, largeGeneration} {
		x := index.New(0)
		for i := range n {
			it := file(fmt.Sprintf("f%05d.conf", i), fmt.Sprint(i), 0o644, 1)
			x.Set(it)
		}
		j := &job{log: slog.New(slog.DiscardHandler), filter: f}
		d := index.DigestOf(x).Hash()
		if _, _, ok := j.wantOf(&wire.Announce{Job: "j", Version: 1, Items: wire.FromIndex(x), Digest: d[:]}); !ok {
			t.Fatal("not admitted")
		}
		if j.release != (n >= largeGeneration) {
			t.Fatalf("a complete announcement of %d items: release %v", n, j.release)
		}
	}
}
