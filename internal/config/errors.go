package config

import (
	"fmt"
	"sort"
	"strings"
)

// Error is one problem in a configuration file. Line and Col are 1-based;
// Col is a byte column. Either is 0 when unknown.
type Error struct {
	File string // the file name given to Load or Parse
	Line int    // 0: no position
	Col  int    // 0: only the line is known
	Msg  string // what is wrong, naming the key
	Err  error  // the underlying error, if any (for errors.Is/As); may be nil
}

// Error returns "FILE:LINE:COL: message", "FILE:LINE: message" when only the
// line is known, or "FILE: message" when there is no position.
func (e *Error) Error() string {
	switch {
	case e.Line > 0 && e.Col > 0:
		return fmt.Sprintf("%s:%d:%d: %s", e.File, e.Line, e.Col, e.Msg)
	case e.Line > 0:
		return fmt.Sprintf("%s:%d: %s", e.File, e.Line, e.Msg)
	default:
		return fmt.Sprintf("%s: %s", e.File, e.Msg)
	}
}

// Unwrap returns the underlying error, if any.
func (e *Error) Unwrap() error { return e.Err }

// ErrorList is every problem found in a configuration file, ordered by
// position (errors without a position first). Parse and Load return a
// non-empty ErrorList for any invalid configuration.
type ErrorList []*Error

// Error returns the errors one per line, each in the form of Error.Error.
func (l ErrorList) Error() string {
	lines := make([]string, len(l))
	for i, e := range l {
		lines[i] = e.Error()
	}
	return strings.Join(lines, "\n")
}

// Unwrap returns the errors, so that errors.As finds the first *Error and
// errors.Is looks at every underlying error.
func (l ErrorList) Unwrap() []error {
	out := make([]error, len(l))
	for i, e := range l {
		out[i] = e
	}
	return out
}

// SortErrors orders errors by line, then column, then message (errors
// without a position first), as Parse returns them.
func SortErrors(l ErrorList) { sortErrors(l) }

// sortErrors orders errors by line, then column, then message, so that the
// output is stable whatever order the checks ran in.
func sortErrors(l ErrorList) {
	sort.SliceStable(l, func(i, j int) bool {
		a, b := l[i], l[j]
		if a.Line != b.Line {
			return a.Line < b.Line
		}
		if a.Col != b.Col {
			return a.Col < b.Col
		}
		return a.Msg < b.Msg
	})
}
