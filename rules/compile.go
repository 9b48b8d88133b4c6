package rules

import (
	"errors"
	"fmt"

	"pbxsync/internal/config"
	"pbxsync/internal/glob"
)

// Rules is the compiled rule set of one job: its [[job.rule]] entries, parsed
// and validated, and the built-in rules unless they are turned off. Build it
// with Compile; it is immutable and safe for concurrent use. The zero value
// and nil have no rules at all.
type Rules struct {
	user     []userRule
	builtins []Builtin // nil when the built-in rules are off
}

type userRule struct {
	index  int
	origin string // "job.rule[2]"
	match  []glob.Pattern
	action *Action // nil: a check-only rule
	check  *Check  // nil: no check
}

// RuleError is an error in the rule at Index (0-based) of a job's rules.
type RuleError struct {
	Index int
	Err   error // usually a *SyntaxError
}

func (e *RuleError) Error() string { return fmt.Sprintf("rule[%d]: %v", e.Index, e.Err) }

// Unwrap returns the underlying error.
func (e *RuleError) Unwrap() error { return e.Err }

// Compile validates a job's rules and returns them ready for planning. Every
// rule needs at least one match glob and an action, a check or both; a when
// needs an action. All problems are reported, joined, one *RuleError each,
// like:
//
//	rule[2]: action "relaod x": unknown verb "relaod"; valid: reload MODULE, command CLI, restart [when convenient|gracefully|now], shell CMD, none
//
// useBuiltins adds the built-in rules (see Builtins) after the user rules.
func Compile(rules []config.Rule, useBuiltins bool) (*Rules, error) {
	out := &Rules{}
	if useBuiltins {
		out.builtins = Builtins()
	}
	var errs []error
	fail := func(i int, err error) { errs = append(errs, &RuleError{Index: i, Err: err}) }
	for i, r := range rules {
		u := userRule{index: i, origin: fmt.Sprintf("job.rule[%d]", i)}
		ok := true
		if len(r.Match) == 0 {
			fail(i, errors.New("match: at least one glob is required"))
			ok = false
		}
		for _, g := range r.Match {
			pat, err := glob.Compile(g)
			if err != nil {
				fail(i, &SyntaxError{What: "match", Input: g, Msg: err.Error()})
				ok = false
				continue
			}
			u.match = append(u.match, pat)
		}
		hasAction := r.Action != "" // whitespace only is an error from ParseAction
		if hasAction {
			a, err := ParseAction(r.Action)
			if err != nil {
				fail(i, err)
				ok = false
			} else {
				a.Rule = u.origin
				u.action = &a
			}
		}
		if r.Check != "" {
			c, err := ParseCheck(r.Check)
			if err != nil {
				fail(i, err)
				ok = false
			} else {
				c.Rule = u.origin
				u.check = &c
			}
		}
		if r.When != "" {
			w, err := ParseWhen(r.When)
			switch {
			case err != nil:
				fail(i, err)
				ok = false
			case !hasAction:
				fail(i, &SyntaxError{What: "when", Input: r.When, Msg: "needs an action: conditions apply to actions, not to checks"})
				ok = false
			case u.action != nil:
				u.action.When = w
			}
		} else if u.action != nil {
			u.action.When = WhenAlways
		}
		if !hasAction && r.Check == "" {
			fail(i, errors.New("neither action nor check: a rule needs at least one"))
			ok = false
		}
		if ok {
			out.user = append(out.user, u)
		}
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return out, nil
}

// UseBuiltins reports whether the built-in rules are on.
func (r *Rules) UseBuiltins() bool { return r != nil && r.builtins != nil }

// Len returns the number of user rules.
func (r *Rules) Len() int {
	if r == nil {
		return 0
	}
	return len(r.user)
}

func (u *userRule) matches(p string) bool {
	for _, g := range u.match {
		if g.Match(p, false) {
			return true
		}
	}
	return false
}
