package syncer

import (
	"io/fs"
	"sort"

	"pbxsync/hostmon"
	"pbxsync/internal/index"
)

// admission is what a target takes of an announced index: the items it
// applies, what it refused (path -> reason) and the paths whose setuid or
// setgid bits it dropped.
type admission struct {
	want    index.Index
	refused map[string]string
	dropped []string
}

// admit decides, without I/O, which part of the index a source announced
// a target applies. A peer's word never widens a job: a path the target's
// own filters exclude (its include and exclude globs and the names
// pbxsync never syncs, astdb.sqlite3*, .pbxsync*, editor files) or whose
// name a job may not sync (control characters) is refused, with what lies
// below it. Unless preserveSUID is set, setuid and setgid bits of files
// and the setuid bit of directories are dropped (a setgid directory only
// keeps new files in its group, as Asterisk spool directories want).
func admit(announced index.Index, f *hostmon.Filter, preserveSUID bool) admission {
	ad := admission{want: index.New(announced.Len())}
	paths := make([]string, 0, announced.Len())
	for p := range announced.All() {
		paths = append(paths, p)
	}
	sort.Strings(paths) // parents before children
	for _, p := range paths {
		it, _ := announced.Get(p)
		ad.take(p, it, f, preserveSUID)
	}
	return ad
}

// admitChanges is admit for a change of the announced index: prev is the
// admission of the announced index before the change (its want and
// refused are updated in place), announced the index after it and paths
// the paths that changed. The result equals admit(announced) at a cost
// that grows with paths, not with the index.
func admitChanges(prev admission, announced index.Index, paths []string, f *hostmon.Filter, preserveSUID bool) admission {
	ad := admission{want: prev.want, refused: prev.refused}
	sorted := append([]string(nil), paths...)
	sort.Strings(sorted) // parents before children
	for _, p := range sorted {
		ad.want.Delete(p)
		delete(ad.refused, p)
		if it, ok := announced.Get(p); ok {
			ad.take(p, it, f, preserveSUID)
		}
	}
	return ad
}

// admitInPlace is admitChanges where the announced index is want itself
// (the admission before took it as it is): the items at paths are taken
// again from want.
func admitInPlace(want index.Index, paths []string, f *hostmon.Filter, preserveSUID bool) admission {
	ad := admission{want: want}
	sorted := append([]string(nil), paths...)
	sort.Strings(sorted) // parents before children
	for _, p := range sorted {
		if it, ok := want.Get(p); ok {
			want.Delete(p)
			ad.take(p, it, f, preserveSUID)
		}
	}
	return ad
}

// admitsAll reports whether admit(x) would take every item of x as it
// is: nothing refused, no setuid or setgid bit dropped.
func admitsAll(x index.Index, f *hostmon.Filter, preserveSUID bool) bool {
	for p, it := range x.All() {
		if !admitsAsIs(p, it, f, preserveSUID) {
			return false
		}
	}
	return true
}

// admitsAsIs reports whether an admission that refused nothing before
// takes it at p as it is: its name and the filters admit it and it has no
// setuid or setgid bit to drop.
func admitsAsIs(p string, it index.Item, f *hostmon.Filter, preserveSUID bool) bool {
	if index.ValidateName(p) != nil || !f.Match(p, it.Kind == index.KindDir) {
		return false
	}
	return preserveSUID || it.Mode&suidBits(it) == 0
}

// suidBits are the mode bits of it an admission drops unless
// preserve_suid is set.
func suidBits(it index.Item) fs.FileMode {
	if it.Kind == index.KindFile {
		return fs.ModeSetuid | fs.ModeSetgid
	}
	return fs.ModeSetuid
}

// take admits the announced item it at p, or records why not. The
// parents of p are decided before it.
func (ad *admission) take(p string, it index.Item, f *hostmon.Filter, preserveSUID bool) {
	refuse := func(why string) {
		if ad.refused == nil {
			ad.refused = map[string]string{}
		}
		ad.refused[p] = why
	}
	if err := index.ValidateName(p); err != nil {
		refuse(err.Error())
		return
	}
	if par := refusedParent(p, ad.refused); par != "" {
		refuse("below refused " + par)
		return
	}
	if !f.Match(p, it.Kind == index.KindDir) {
		refuse("excluded by this node's filters")
		return
	}
	if !preserveSUID {
		if bits := suidBits(it); it.Mode&bits != 0 {
			it.Mode &^= bits
			ad.dropped = append(ad.dropped, p)
		}
	}
	ad.want.Set(it)
}

// refusedParent returns the nearest parent directory of p in refused, or "".
func refusedParent(p string, refused map[string]string) string {
	for d := index.Parent(p); d != ""; d = index.Parent(d) {
		if _, ok := refused[d]; ok {
			return d
		}
	}
	return ""
}
