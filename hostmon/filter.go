package hostmon

import (
	"fmt"
	"path"
	"strings"
)

// BuiltinExcludes returns the names pbxsync never syncs, whatever a job says:
// Asterisk's internal database (astdb.sqlite3 and its journal files),
// pbxsync's own staging and temporary files (names starting with
// ".pbxsync"), and editor temporaries (vim swap files and its "4913" probe
// file, backup files ending in "~", Emacs lock files ".#*"). Each is a
// base-name pattern and applies at any depth, to files and directories.
// NewFilter always adds them.
func BuiltinExcludes() []string {
	return []string{
		"astdb.sqlite3*",
		".pbxsync*",
		"*.swp",
		"*.swo",
		"*.swx",
		"*~",
		".#*",
		"4913",
	}
}

// Filter decides which paths under a job root belong to the job.
//
// Paths are slash-separated and relative to the job root. Patterns are
// globs: "*", "?" and "[...]" (negated by "[!...]" or "[^...]") match within
// one path element and never cross "/"; an element "**" matches zero or more whole elements. A pattern
// without "/" matches the base name at any depth ("*.conf" matches
// "a/b/x.conf"); a pattern containing "/" is anchored at the job root (a
// leading "/" only anchors). A trailing "/" restricts a pattern to
// directories.
//
// A path is part of the job when neither it nor any of its parent
// directories matches an exclude pattern (user or built-in), and either the
// include list is empty, or it or one of its parent directories matches an
// include pattern (include "sounds" takes the whole sounds tree), or it is a
// directory below which an include pattern could still match (so that the
// directories leading to included files are part of the job too).
//
// A Filter is immutable and safe for concurrent use.
type Filter struct {
	include []pattern
	exclude []pattern
}

type pattern struct {
	raw     string
	elems   []string // anchored: one glob per path element; base: one glob
	base    bool     // matches the base name at any depth
	dirOnly bool     // matches directories only
}

// NewFilter compiles include and exclude patterns into a Filter. The
// built-in excludes (see BuiltinExcludes) are always added. It fails on a
// malformed pattern, naming it.
func NewFilter(include, exclude []string) (*Filter, error) {
	f := &Filter{}
	for _, raw := range include {
		p, err := compilePattern(raw)
		if err != nil {
			return nil, fmt.Errorf("include pattern: %w", err)
		}
		f.include = append(f.include, p)
	}
	for _, raw := range exclude {
		p, err := compilePattern(raw)
		if err != nil {
			return nil, fmt.Errorf("exclude pattern: %w", err)
		}
		f.exclude = append(f.exclude, p)
	}
	for _, raw := range BuiltinExcludes() {
		p, err := compilePattern(raw)
		if err != nil {
			return nil, fmt.Errorf("built-in exclude pattern: %w", err)
		}
		f.exclude = append(f.exclude, p)
	}
	return f, nil
}

// defaultFilter is the Filter with no user patterns, used when a caller
// passes a nil *Filter.
func defaultFilter() *Filter {
	f, err := NewFilter(nil, nil)
	if err != nil {
		panic(err) // the built-in patterns are constant and valid
	}
	return f
}

func compilePattern(raw string) (pattern, error) {
	p := pattern{raw: raw}
	s := raw
	if strings.ContainsRune(s, 0) || strings.Contains(s, "\\") {
		return p, fmt.Errorf("%q: contains a NUL or backslash", raw)
	}
	if strings.HasSuffix(s, "/") {
		p.dirOnly = true
		s = strings.TrimSuffix(s, "/")
	}
	anchored := strings.Contains(s, "/")
	s = strings.TrimPrefix(s, "/")
	if s == "" {
		return p, fmt.Errorf("%q: empty pattern", raw)
	}
	for _, el := range strings.Split(s, "/") {
		switch el {
		case "":
			return p, fmt.Errorf("%q: empty path element", raw)
		case ".", "..":
			return p, fmt.Errorf("%q: contains %q", raw, el)
		}
		el = shellNegation(el)
		if _, err := path.Match(el, ""); err != nil {
			return p, fmt.Errorf("%q: %w", raw, err)
		}
		p.elems = append(p.elems, el)
	}
	p.base = !anchored
	return p, nil
}

// match reports whether p matches the path made of elems; isDir says
// whether that path is a directory.
func (p *pattern) match(elems []string, isDir bool) bool {
	if len(elems) == 0 || (p.dirOnly && !isDir) {
		return false
	}
	if p.base {
		return globElem(p.elems[0], elems[len(elems)-1])
	}
	states := p.run(elems)
	return states[len(p.elems)]
}

// couldMatchBelow reports whether p could match some path strictly below
// the directory made of elems.
func (p *pattern) couldMatchBelow(elems []string) bool {
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
func (p *pattern) run(elems []string) []bool {
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
func (p *pattern) closure(states []bool) {
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

func globElem(glob, name string) bool {
	ok, err := path.Match(glob, name)
	return err == nil && ok
}

func splitRel(rel string) []string {
	rel = strings.Trim(rel, "/")
	if rel == "" || rel == "." {
		return nil
	}
	return strings.Split(rel, "/")
}

// anyMatch reports whether one of ps matches the path elems or one of its
// parent directories.
func anyMatch(ps []pattern, elems []string, isDir bool) bool {
	for i := 1; i <= len(elems); i++ {
		d := isDir || i < len(elems)
		for j := range ps {
			if ps[j].match(elems[:i], d) {
				return true
			}
		}
	}
	return false
}

func (f *Filter) includedBelow(elems []string) bool {
	for j := range f.include {
		if f.include[j].couldMatchBelow(elems) {
			return true
		}
	}
	return false
}

// Match reports whether the path rel (relative to the job root) belongs to
// the job; isDir says whether it is a directory. The job root itself ("" or
// ".") is never an item and does not match.
func (f *Filter) Match(rel string, isDir bool) bool {
	elems := splitRel(rel)
	if len(elems) == 0 {
		return false
	}
	if anyMatch(f.exclude, elems, isDir) {
		return false
	}
	if len(f.include) == 0 || anyMatch(f.include, elems, isDir) {
		return true
	}
	return isDir && f.includedBelow(elems)
}

// ExcludesDir reports whether nothing at or below the directory rel can
// belong to the job, so a walk may skip its subtree and a watcher need not
// watch it. It is the negation of Match(rel, true), except for the job root,
// which is never excluded.
func (f *Filter) ExcludesDir(rel string) bool {
	if len(splitRel(rel)) == 0 {
		return false
	}
	return !f.Match(rel, true)
}
