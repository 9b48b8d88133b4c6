package core

import (
	"testing"

	"pbxsync/internal/index"
)

// v builds a vector from node, value pairs.
func v(pairs ...any) index.Vector {
	var out index.Vector
	for i := 0; i < len(pairs); i += 2 {
		out = out.Update(pairs[i].(string), uint64(pairs[i+1].(int)))
	}
	return out
}

// file is a live file at path with content c, mtime t (seconds) and vector vec.
func file(path, c string, t int64, vec index.Vector) index.Item {
	return index.Item{Path: path, Kind: index.KindFile, Size: int64(len(c)), Mode: 0o644, MTime: t * 1e9, Hash: index.Sum([]byte(c)), Version: vec}
}

// gone is a tombstone of path made at time t (seconds).
func gone(path string, t int64, vec index.Vector) index.Item {
	return index.Item{Path: path, Kind: index.KindFile, Deleted: true, MTime: t * 1e9, Version: vec}
}

func TestWinsTable(t *testing.T) {
	newest := Policy{Kind: Newest}
	preferB := Policy{Kind: Prefer, Node: "b"}
	cases := []struct {
		name string
		p    Policy
		a, b index.Item
		want bool // a wins
	}{
		{"newest: later mtime wins", newest, file("x", "A", 20, v("a", 2)), file("x", "B", 10, v("a", 1, "b", 1)), true},
		{"newest: earlier mtime loses", newest, file("x", "A", 10, v("a", 2)), file("x", "B", 20, v("a", 1, "b", 1)), false},
		{"newest: equal mtime, lower author wins", newest, file("x", "A", 10, v("a", 2)), file("x", "B", 10, v("a", 1, "b", 1)), true},
		{"newest: equal mtime, higher author loses", newest, file("x", "B", 10, v("a", 1, "b", 1)), file("x", "A", 10, v("a", 2)), false},
		{"edit beats an older-looking delete", newest, file("x", "A", 1, v("a", 2)), gone("x", 99, v("a", 1, "b", 1)), true},
		{"delete loses to an edit whatever the times", newest, gone("x", 99, v("a", 1, "b", 1)), file("x", "A", 1, v("a", 2)), false},
		{"prefer:b: b's older edit wins", preferB, file("x", "B", 10, v("a", 1, "b", 1)), file("x", "A", 20, v("a", 2)), true},
		{"prefer:b: the other side loses", preferB, file("x", "A", 20, v("a", 2)), file("x", "B", 10, v("a", 1, "b", 1)), false},
		{"prefer:b: neither by b falls back to newest", preferB, file("x", "C", 30, v("a", 1, "c", 1)), file("x", "A", 20, v("a", 2)), true},
		{"prefer:b: still an edit beats b's delete", preferB, file("x", "A", 20, v("a", 2)), gone("x", 10, v("a", 1, "b", 1)), true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := Wins(c.p, c.a, c.b); got != c.want {
				t.Errorf("Wins(a, b) = %v, want %v", got, c.want)
			}
			if got := Wins(c.p, c.b, c.a); got == c.want {
				t.Errorf("Wins(b, a) = %v: both sides win or lose, members would disagree", got)
			}
		})
	}
}

func TestParsePolicy(t *testing.T) {
	for _, c := range []struct {
		in   string
		kind PolicyKind
		name string
		bad  bool
	}{{"", Newest, "", false}, {"newest", Newest, "", false}, {"prefer:pbx1", Prefer, "pbx1", false}, {"prefer:", 0, "", true}, {"oldest", 0, "", true}} {
		k, n, err := ParsePolicy(c.in)
		if (err != nil) != c.bad || err == nil && (k != c.kind || n != c.name) {
			t.Errorf("ParsePolicy(%q) = %v, %q, %v", c.in, k, n, err)
		}
	}
}

func TestMergeAndAuthor(t *testing.T) {
	if got := Merge(v("a", 2, "b", 1), v("b", 3, "c", 1)); index.Compare(got, v("a", 2, "b", 3, "c", 1)) != index.Equal {
		t.Errorf("Merge = %v", got)
	}
	if got := Author(v("a", 1, "b", 2, "c", 5), v("a", 1, "b", 1, "c", 1)); got != "b" {
		t.Errorf("Author = %q, want the lowest node that counted more: b", got)
	}
	if got := Author(v("a", 1), v("a", 1)); got != "" {
		t.Errorf("Author of equal vectors = %q, want none", got)
	}
}
