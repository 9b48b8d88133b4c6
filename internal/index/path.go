package index

import (
	"errors"
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"
)

// MaxPathLen bounds the length of an item path; longer paths are refused.
const MaxPathLen = 4096

// ErrBadPath is wrapped by every error ValidatePath returns.
var ErrBadPath = errors.New("bad path")

// ValidatePath checks that p is a clean, relative, slash-separated path that
// stays inside the job root: not empty, not absolute, no "." or ".."
// element, no empty element, no backslash, no NUL, valid UTF-8. Paths from
// the wire and from disk metadata pass through here before any use.
func ValidatePath(p string) error {
	bad := func(why string) error { return fmt.Errorf("%w %q: %s", ErrBadPath, p, why) }
	switch {
	case p == "":
		return bad("empty")
	case len(p) > MaxPathLen:
		return bad("too long")
	case !utf8.ValidString(p):
		return bad("not UTF-8")
	case strings.HasPrefix(p, "/"):
		return bad("absolute")
	case strings.ContainsAny(p, "\\\x00"):
		return bad("contains a backslash or NUL")
	}
	for el := range strings.SplitSeq(p, "/") { // no slice of every element
		switch el {
		case "":
			return bad("empty element")
		case ".", "..":
			return bad("contains " + el)
		}
	}
	return nil
}

// ValidateName is ValidatePath for a name a job may sync: it also refuses
// control characters (C0, DEL, C1: a newline would split the one-path-a-
// line PBXSYNC_CHANGED a check reads, and an escape sequence would reach
// an admin's terminal). Scans skip such names and targets refuse them.
func ValidateName(p string) error {
	if err := ValidatePath(p); err != nil {
		return err
	}
	for _, r := range p {
		if unicode.IsControl(r) {
			return fmt.Errorf("%w %q: contains the control character %U", ErrBadPath, p, r)
		}
	}
	return nil
}

// Parent returns the parent directory of p, or "" for a top-level item.
func Parent(p string) string {
	i := strings.LastIndexByte(p, '/')
	if i < 0 {
		return ""
	}
	return p[:i]
}
