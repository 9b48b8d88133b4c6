package syncer

import (
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
	x := idx(dir("d", 0o755, 1), file("d/a.conf", "a", 0o644, 1), file("d/b.conf", "b", 0o644, 1))
	d := index.DigestOf(x).Hash()
	mk := func(exclude []string, it *index.Item) *job {
		f, err := hostmon.NewFilter(nil, exclude)
		if err != nil {
			t.Fatal(err)
		}
		latest := x.Clone()
		if it != nil {
			latest[it.Path] = *it
		}
		return &job{log: slog.New(slog.DiscardHandler), filter: f,
			latest: &store.Generation{Number: 3, SourceVersion: 7, Index: latest}}
	}
	ask := &wire.Announce{Job: "j", Version: 7, Base: 7, Digest: d[:]}

	j := mk(nil, nil)
	want, changed, ok := j.wantOf(ask)
	if !ok || !sameMap(want, j.latest.Index) || changed == nil || len(changed) != 0 {
		t.Fatalf("the question was not answered from the newest index itself (ok %v, same map %v, changed %v)", ok, sameMap(want, j.latest.Index), changed)
	}
	if j.plain.version != 7 {
		t.Fatalf("plain version %d after the question, want 7", j.plain.version)
	}

	j = mk([]string{"b.conf"}, nil) // the filters changed since the generation was made
	want, _, ok = j.wantOf(ask)
	if !ok || sameMap(want, j.latest.Index) {
		t.Fatal("a filter that now refuses a path did not make the question admitted in full")
	}
	if _, has := want["d/b.conf"]; has || len(want) != 2 {
		t.Fatalf("want %v still holds the refused path", want)
	}

	suid := file("d/a.conf", "a", 0o755, 1)
	suid.Mode |= fs.ModeSetuid
	j = mk(nil, &suid)
	d2 := index.DigestOf(j.latest.Index).Hash()
	want, _, ok = j.wantOf(&wire.Announce{Job: "j", Version: 7, Base: 7, Digest: d2[:]})
	if !ok || sameMap(want, j.latest.Index) || want["d/a.conf"].Mode&fs.ModeSetuid != 0 {
		t.Fatal("a setuid bit the policy drops did not make the question admitted in full")
	}

	j = mk(nil, nil)
	other := index.Sum([]byte("other"))
	if want, _, ok := j.wantOf(&wire.Announce{Job: "j", Version: 7, Base: 7, Digest: other[:]}); ok && sameMap(want, j.latest.Index) {
		t.Fatal("a question whose digest differs was answered from the index")
	}
}
