package syncer

import (
	"fmt"
	"testing"

	"pbxsync/hostmon"
	"pbxsync/internal/index"
	"pbxsync/internal/wire"
)

// BenchmarkOneEditAnnouncement: what a one-file edit in a 100,000-file job
// costs outside the store — the source building the incremental
// announcement, the target rebuilding, admitting and checking it, and
// planning the apply. "whole" is the way of the code before (diff of the
// two indexes, clone of the base, digest by sort+hash, admission of every
// item, Plan over both trees); "changes" the way it is now (the changed
// paths, kept digests, admission and planning of the changed paths; the
// one clone of the newest generation that the store still needs is kept).
func BenchmarkOneEditAnnouncement(b *testing.B) {
	const n = 100000
	prev := index.New(n + 100)
	for d := range 100 {
		dp := fmt.Sprintf("site%03d", d)
		prev.Set(dir(dp, 0o755, 1))
		for f := range n / 100 {
			it := file(fmt.Sprintf("%s/endpoint%04d.conf", dp, f), fmt.Sprint(d, f), 0o644, 1)
			prev.Set(it)
		}
	}
	next := prev.Clone()
	edited := file("site050/endpoint0050.conf", "edited", 0o644, 2)
	next.Set(edited)
	changed := []string{edited.Path}
	filter, err := hostmon.NewFilter(nil, nil)
	if err != nil {
		b.Fatal(err)
	}
	b.Run("whole", func(b *testing.B) {
		for b.Loop() {
			items, removed, digest := wire.Incremental(prev, next)
			m := &wire.Announce{Base: 1, Version: 2, Items: items, Removed: removed, Digest: digest}
			full, err := m.Apply(prev)
			if err != nil {
				b.Fatal(err)
			}
			want := admit(full, filter, false).want
			_ = want.Digest()
			_ = Plan(prev, want)
		}
	})
	b.Run("changes", func(b *testing.B) {
		announced := prev.Clone()
		var src, dst digestCache
		latest := prev
		src.of(prev) // kept from the generation before, as the agents do
		dst.of(announced)
		dst.of(latest)
		for b.Loop() {
			items, removed := wire.Changes(next, changed)
			d := src.derive(prev, next, changed).Hash()
			m := &wire.Announce{Base: 1, Version: 2, Items: items, Removed: removed, Digest: d[:]}
			ad := dst.of(announced)
			paths, err := m.ApplyTo(announced, &ad)
			if err != nil {
				b.Fatal(err)
			}
			want := latest.Clone() // the store still takes a whole index
			want = admitChanges(admission{want: want}, announced, paths, filter, false).want
			_ = dst.derive(latest, want, paths)
			_ = PlanPaths(IndexLookup(latest), IndexLookup(want), paths)
			// back to the base for the next round
			b.StopTimer()
			orig, _ := prev.Get(edited.Path)
			announced.Set(orig)
			dst.put(announced, index.DigestOf(announced))
			b.StartTimer()
		}
	})
}
