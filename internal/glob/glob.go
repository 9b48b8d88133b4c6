// Package glob is the one glob syntax of pbxsync, used by job include and
// exclude lists, by rule matches and by the config checker.
//
// Paths are slash-separated and relative to a job root. "*", "?" and
// "[...]" (negated by "[!...]" or "[^...]") match within one path element
// and never cross "/"; an element "**" matches zero or more whole elements.
// A pattern without "/" matches the base name at any depth ("*.conf"
// matches "a/b/x.conf"); a pattern containing "/" is anchored at the root
// (a leading "/" only anchors). A trailing "/" restricts a pattern to
// directories.
package glob

import (
	"fmt"
	"path"
	"strings"
)

// Pattern is one compiled glob. It is immutable.
type Pattern struct {
	raw     string
	elems   []string // anchored: one glob per path element; base: one glob
	base    bool     // matches the base name at any depth
	dirOnly bool     // matches directories only
}

// String returns the pattern as written.
func (p Pattern) String() string { return p.raw }

// Compile parses raw, failing with an error that quotes it.
func Compile(raw string) (Pattern, error) {
	p := Pattern{raw: raw}
	bad := func(why string) (Pattern, error) { return p, fmt.Errorf("bad pattern %q: %s", raw, why) }
	s := raw
	if strings.ContainsRune(s, 0) {
		return bad("contains a NUL byte")
	}
	if strings.HasSuffix(s, "/") {
		p.dirOnly = true
		s = strings.TrimSuffix(s, "/")
	}
	anchored := strings.Contains(s, "/")
	s = strings.TrimPrefix(s, "/")
	if s == "" {
		return bad("empty")
	}
	for _, el := range strings.Split(s, "/") {
		switch {
		case el == "":
			return bad("empty path element (double '/')")
		case el == "." || el == "..":
			return bad(fmt.Sprintf("contains %q; patterns are relative to the job root", el))
		case el != "**" && strings.Contains(el, "**"):
			return bad(fmt.Sprintf(`"**" must be a whole path element, not part of %q`, el))
		}
		el = shellNegation(el)
		if _, err := path.Match(el, ""); err != nil {
			return p, fmt.Errorf("bad pattern %q: %w", raw, err)
		}
		p.elems = append(p.elems, el)
	}
	p.base = !anchored
	return p, nil
}

// Match reports whether p matches the path rel; isDir says whether it is a
// directory.
func (p Pattern) Match(rel string, isDir bool) bool { return p.MatchElems(Split(rel), isDir) }

// MatchElems is Match for a path already split into its elements.
func (p Pattern) MatchElems(elems []string, isDir bool) bool {
	if len(elems) == 0 || (p.dirOnly && !isDir) {
		return false
	}
	if p.base {
		return globElem(p.elems[0], elems[len(elems)-1])
	}
	states := p.run(elems)
	return states[len(p.elems)]
}

// CouldMatchBelow reports whether p could match some path strictly below
// the directory made of elems.
func (p Pattern) CouldMatchBelow(elems []string) bool {
	if p.base {
		return true
	}
	states := p.run(elems)
	for i := 0; i < len(p.elems); i++ {
		if states[i] {
			return true
		}
	}
	return false
}

// run simulates the pattern as an automaton over path elements: state i
// means "the first i pattern elements have matched". It returns the set of
// states reached after consuming elems, closed under "**" matching nothing.
func (p Pattern) run(elems []string) []bool {
	n := len(p.elems)
	cur := make([]bool, n+1)
	next := make([]bool, n+1)
	cur[0] = true
	p.closure(cur)
	for _, el := range elems {
		clear(next)
		moved := false
		for i := 0; i < n; i++ {
			if !cur[i] {
				continue
			}
			if p.elems[i] == "**" {
				next[i] = true // "**" consumes el and may consume more
				moved = true
			} else if globElem(p.elems[i], el) {
				next[i+1] = true
				moved = true
			}
		}
		cur, next = next, cur
		if !moved {
			return cur
		}
		p.closure(cur)
	}
	return cur
}

// closure lets every "**" element match zero path elements.
func (p Pattern) closure(states []bool) {
	for i := 0; i < len(p.elems); i++ {
		if states[i] && p.elems[i] == "**" {
			states[i+1] = true
		}
	}
}

// shellNegation rewrites the shell's "[!...]" class negation into the
// "[^...]" that path.Match understands.
func shellNegation(glob string) string {
	if !strings.Contains(glob, "[!") {
		return glob
	}
	b := []byte(glob)
	inClass := false
	for i := 0; i < len(b); i++ {
		switch {
		case !inClass && b[i] == '[':
			inClass = true
			if i+1 < len(b) && b[i+1] == '!' {
				b[i+1] = '^'
				i++
			}
		case inClass && b[i] == ']':
			inClass = false
		}
	}
	return string(b)
}

// globElem reports whether the element glob matches name (path.Match).
// Every path a scan, a watch or an admission meets is matched against
// every exclude pattern (the built-in ones at least), so the common
// shapes are matched without path.Match: a literal, and one "*" with
// literal text around it ("*.swp", ".pbxsync*"); the rest goes to
// path.Match. Both give the same answer (TestGlobElemFastPath).
func globElem(glob, name string) bool {
	if i := strings.IndexAny(glob, `*?[\`); i < 0 {
		return glob == name
	} else if glob[i] == '*' && !strings.ContainsAny(glob[i+1:], `*?[\`) {
		pre, suf := glob[:i], glob[i+1:]
		return len(name) >= len(pre)+len(suf) && strings.HasPrefix(name, pre) && strings.HasSuffix(name, suf) &&
			!strings.Contains(name[len(pre):len(name)-len(suf)], "/")
	}
	ok, err := path.Match(glob, name)
	return err == nil && ok
}

// Split splits a relative path into its elements; the root ("", ".") has none.
func Split(rel string) []string {
	rel = strings.Trim(rel, "/")
	if rel == "" || rel == "." {
		return nil
	}
	return strings.Split(rel, "/")
}
