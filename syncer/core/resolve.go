package core

import (
	"errors"
	"fmt"
	"strings"

	"pbxsync/internal/index"
)

// PolicyKind is how concurrent versions of an item are resolved.
type PolicyKind int

// The conflict policies of a mesh job.
const (
	// Newest: the later modification time wins; on equal times the
	// version whose author has the lower node ID.
	Newest PolicyKind = iota
	// Prefer: the version a named node took part in wins; when both or
	// neither did, Newest decides.
	Prefer
)

// Policy is a job's conflict policy.
type Policy struct {
	Kind PolicyKind
	Node string // Prefer: the preferred node's ID (as in version vectors)
}

// ParsePolicy parses the conflict key of a job: "" or "newest", or
// "prefer:NAME". It returns the name after "prefer:" for the caller to map
// to a node ID (the vectors count by node ID).
func ParsePolicy(s string) (kind PolicyKind, name string, err error) {
	switch {
	case s == "" || s == "newest":
		return Newest, "", nil
	case strings.HasPrefix(s, "prefer:"):
		name = strings.TrimPrefix(s, "prefer:")
		if name == "" {
			return 0, "", errors.New(`"prefer:" needs a member name, e.g. "prefer:pbx1"`)
		}
		return Prefer, name, nil
	}
	return 0, "", fmt.Errorf(`%q: want "newest" or "prefer:NODE"`, s)
}

// authors returns the nodes whose counters in a exceed those in b: the
// nodes that made a's side of the difference, sorted (vectors are).
func authors(a, b index.Vector) []string {
	var out []string
	for _, c := range a {
		if c.Value > b.Get(c.Node) {
			out = append(out, c.Node)
		}
	}
	return out
}

// Author returns the node that made version a as seen against b: the
// lowest node ID among the nodes whose counters in a exceed those in b
// ("" when none does). Both members of a conflict compute the same.
func Author(a, b index.Vector) string {
	if as := authors(a, b); len(as) > 0 {
		return as[0]
	}
	return ""
}

// Wins reports whether version a beats version b when neither vector
// contains the other (or both are equal but the contents differ). The
// answer depends only on the two items and the policy, so every member
// picks the same winner, and Wins(a, b) == !Wins(b, a) for different
// versions:
//   - a live item beats a deletion (an edit concurrent with a delete wins);
//   - Prefer: the side the preferred node authored wins;
//   - the later modification time wins;
//   - on equal times, the lower author node ID; then the lower content
//     hash (the same author cannot make two concurrent versions, but a
//     store rebuilt from scratch could).
func Wins(p Policy, a, b index.Item) bool {
	if a.Deleted != b.Deleted {
		return !a.Deleted
	}
	if p.Kind == Prefer && p.Node != "" {
		ap, bp := contains(authors(a.Version, b.Version), p.Node), contains(authors(b.Version, a.Version), p.Node)
		if ap != bp {
			return ap
		}
	}
	if a.MTime != b.MTime {
		return a.MTime > b.MTime
	}
	aa, ba := Author(a.Version, b.Version), Author(b.Version, a.Version)
	if aa != ba {
		switch {
		case aa == "":
			return false
		case ba == "":
			return true
		}
		return aa < ba
	}
	if a.Kind != b.Kind {
		return a.Kind < b.Kind
	}
	return string(a.Hash[:]) < string(b.Hash[:])
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// Merge returns the vector that contains both a and b: each node's
// counter is the larger of the two.
func Merge(a, b index.Vector) index.Vector {
	out := a.Clone()
	for _, c := range b {
		out = out.Update(c.Node, c.Value)
	}
	return out
}
