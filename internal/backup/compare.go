package backup

import (
	"sort"

	"pbxsync/internal/index"
)

// Compare lists the paths where want differs from cur: items to add, items
// whose content, kind or mode differ, and items to delete, each sorted.
func Compare(cur, want index.Index) (add, change, del []string) {
	for p, w := range want.All() {
		c, ok := cur.Get(p)
		switch {
		case !ok:
			add = append(add, p)
		case c.Kind != w.Kind || c.Mode != w.Mode || c.Hash != w.Hash || c.Size != w.Size:
			change = append(change, p)
		}
	}
	for p := range cur.All() {
		if !want.Has(p) {
			del = append(del, p)
		}
	}
	sort.Strings(add)
	sort.Strings(change)
	sort.Strings(del)
	return add, change, del
}
