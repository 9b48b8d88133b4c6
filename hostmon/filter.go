package hostmon

import (
	"fmt"
	"os"
	"path/filepath"

	"pbxsync/internal/glob"
	"pbxsync/internal/tmpl"
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
	include []glob.Pattern
	exclude []glob.Pattern
	// templates, when set, excludes what a template of the job renders
	// to while hasTemplate says the template is there (see WithTemplates).
	templates   *tmpl.Set
	hasTemplate func(rel string) bool
}

// WithTemplates returns a copy of f that also excludes the rendering of
// every template of the job rooted at root: a file X is not part of the
// job while X.tmpl, a template by ts, is a regular file in the tree (X is
// rendered on each host from it and never synced). ts nil or empty gives f.
func (f *Filter) WithTemplates(root string, ts *tmpl.Set) *Filter {
	return f.WithTemplatesIn(ts, func(t string) bool {
		fi, err := os.Lstat(filepath.Join(root, filepath.FromSlash(t)))
		return err == nil && fi.Mode().IsRegular()
	})
}

// WithTemplatesIn is WithTemplates where has says whether the template
// rel is there (a target admitting an announcement asks the announced
// index, not its tree). ts nil or empty gives f.
func (f *Filter) WithTemplatesIn(ts *tmpl.Set, has func(rel string) bool) *Filter {
	if ts.Empty() {
		return f
	}
	g := *f
	g.templates, g.hasTemplate = ts, has
	return &g
}

// rendered reports whether rel is a template's rendering (see
// WithTemplates): one question to hasTemplate about rel+".tmpl".
func (f *Filter) rendered(rel string) bool {
	if f.templates == nil || !f.templates.IsOutput(rel) {
		return false
	}
	return f.hasTemplate(rel + tmpl.Suffix)
}

// Rendered reports whether the file rel is, right now, the rendering of a
// template of the job (and so not part of it); always false for a Filter
// made without WithTemplates.
func (f *Filter) Rendered(rel string) bool { return f.rendered(rel) }

// NewFilter compiles include and exclude patterns into a Filter. The
// built-in excludes (see BuiltinExcludes) are always added. It fails on a
// malformed pattern, naming it.
func NewFilter(include, exclude []string) (*Filter, error) {
	f := &Filter{}
	for _, raw := range include {
		p, err := glob.Compile(raw)
		if err != nil {
			return nil, fmt.Errorf("include pattern: %w", err)
		}
		f.include = append(f.include, p)
	}
	for _, raw := range exclude {
		p, err := glob.Compile(raw)
		if err != nil {
			return nil, fmt.Errorf("exclude pattern: %w", err)
		}
		f.exclude = append(f.exclude, p)
	}
	for _, raw := range BuiltinExcludes() {
		p, err := glob.Compile(raw)
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

// anyMatch reports whether one of ps matches the path elems or one of its
// parent directories.
func anyMatch(ps []glob.Pattern, elems []string, isDir bool) bool {
	for i := 1; i <= len(elems); i++ {
		d := isDir || i < len(elems)
		for j := range ps {
			if ps[j].MatchElems(elems[:i], d) {
				return true
			}
		}
	}
	return false
}

func (f *Filter) includedBelow(elems []string) bool {
	for j := range f.include {
		if f.include[j].CouldMatchBelow(elems) {
			return true
		}
	}
	return false
}

// Match reports whether the path rel (relative to the job root) belongs to
// the job; isDir says whether it is a directory. The job root itself ("" or
// ".") is never an item and does not match.
func (f *Filter) Match(rel string, isDir bool) bool {
	elems := glob.Split(rel)
	if len(elems) == 0 {
		return false
	}
	if anyMatch(f.exclude, elems, isDir) {
		return false
	}
	if len(f.include) == 0 || anyMatch(f.include, elems, isDir) {
		return isDir || !f.rendered(rel)
	}
	return isDir && f.includedBelow(elems)
}

// ExcludesDir reports whether nothing at or below the directory rel can
// belong to the job, so a walk may skip its subtree and a watcher need not
// watch it. It is the negation of Match(rel, true), except for the job root,
// which is never excluded.
func (f *Filter) ExcludesDir(rel string) bool {
	if len(glob.Split(rel)) == 0 {
		return false
	}
	return !f.Match(rel, true)
}
