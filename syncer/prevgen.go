package syncer

import (
	"fmt"
	"slices"

	"pbxsync/internal/index"
)

// prevGen is a source's generation before its newest, kept as what it
// held where the newest differs from it: the newest index is changed in
// place by each generation (see newSourceChange), so the one before is
// that index with these few items put back. It costs O(changed) memory
// instead of a second copy of the index.
type prevGen struct {
	number uint64               // 0: none (no generation before, or not known)
	at     map[string]prevEntry // the paths where the newest differs from it, with what it held there
	paths  []string             // the keys of at, sorted
}

// prevEntry is what a generation held at one path: ok is false where it
// held nothing.
type prevEntry struct {
	it index.Item
	ok bool
}

// lookup returns the item of the generation before at path p, where cur
// is the newest generation's index.
func (p *prevGen) lookup(cur index.Index, path string) (index.Item, bool) {
	if e, ok := p.at[path]; ok {
		return e.it, e.ok
	}
	return cur.Get(path)
}

// items returns the items the generation before held where the newest
// differs from it.
func (p *prevGen) items() index.Index {
	out := index.New(len(p.at))
	for _, e := range p.at {
		if e.ok {
			out.Set(e.it)
		}
	}
	return out
}

// newPrevGen returns generation number of index prev as the one before
// cur, where they may differ only at paths (nil: anywhere, compared in
// full): only the paths where they do differ (in any field the store
// keeps) are kept.
func newPrevGen(number uint64, prev, cur index.Index, paths []string) prevGen {
	if paths == nil {
		for p, it := range cur.All() {
			if old, ok := prev.Get(p); !ok || !old.Equal(&it) {
				paths = append(paths, p)
			}
		}
		for p := range prev.Paths() {
			if !cur.Has(p) {
				paths = append(paths, p)
			}
		}
	}
	pg := prevGen{number: number, at: make(map[string]prevEntry, len(paths))}
	for _, p := range paths {
		old, had := prev.Get(p)
		it, has := cur.Get(p)
		if had == has && (!had || old.Equal(&it)) {
			continue
		}
		if _, dup := pg.at[p]; !dup {
			pg.at[p] = prevEntry{old, had}
			pg.paths = append(pg.paths, p)
		}
	}
	slices.Sort(pg.paths)
	return pg
}

// prevFromStore returns generation number, the one before the source's
// newest, from the newest generation's change record (what it changed
// against number, with the items it replaced): no whole index is read.
func (j *job) prevFromStore(number uint64) (prevGen, error) {
	chs, err := j.a.store.Changes(j.cfg.Name, j.latest.Number)
	if err != nil {
		return prevGen{}, err
	}
	pg := prevGen{number: number, at: make(map[string]prevEntry, len(chs))}
	for _, c := range chs {
		cur, has := j.latest.Index.Get(c.Path)
		if (c.New != nil) != has || (has && !c.New.Equal(&cur)) {
			return prevGen{}, fmt.Errorf("the change record of generation %d does not end in its index at %s", j.latest.Number, c.Path)
		}
		var e prevEntry
		if c.Old != nil {
			e = prevEntry{*c.Old, true}
		}
		if e.ok == has && (!has || e.it.Equal(&cur)) {
			continue
		}
		pg.at[c.Path] = e
		pg.paths = append(pg.paths, c.Path)
	}
	slices.Sort(pg.paths)
	return pg, nil
}
