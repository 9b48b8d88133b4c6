package rules

import (
	"fmt"
	"strings"
)

// Conditions a rule's when may name. An action runs when all of its
// conditions hold.
const (
	// WhenAlways runs the action whatever the host state; the default.
	WhenAlways = "always"
	// WhenAsteriskUp skips the action while Asterisk is down: an Asterisk
	// that starts later reads the new files anyway, so nothing is lost.
	WhenAsteriskUp = "asterisk-up"
	// WhenNoChannels defers the action while any channel is up, so that no
	// call is disturbed; it runs once the channel count is zero.
	WhenNoChannels = "no-channels"
)

// conditions returns the conditions in canonical order: the order in which
// Decide evaluates them and in which a canonical When names them. Bit i of a
// conditionSet stands for entry i. (A function, not a variable: the package
// keeps no mutable state.)
func conditions() [2]string { return [2]string{WhenAsteriskUp, WhenNoChannels} }

const validWhen = "valid: always, asterisk-up, no-channels, or several joined with ','"

// HostState is the snapshot of the local host that conditions are
// evaluated against. The zero value is "Asterisk down, no channels".
type HostState struct {
	AsteriskUp     bool // AMI answers and CoreStatus is fine
	ActiveChannels int  // channels up, from CoreShowChannels
}

// Deferred is an action that Decide did not run, with the reason.
type Deferred struct {
	Action Action
	Reason string // e.g. "no-channels: 3 active channels"
	// Skipped is true when the action is not needed at all in this state
	// (Asterisk is down and reads the new files when it starts); false means
	// the action is still due and runs once its condition holds.
	Skipped bool
}

// ParseWhen parses a rule's when string and returns it in canonical form:
// "always" for the empty string or "always", else the named conditions
// without duplicates, in the order asterisk-up, no-channels, joined with
// ",". Names are case-insensitive and may be separated by ',' or spaces.
func ParseWhen(s string) (string, error) {
	set, err := parseConditions(s)
	if err != nil {
		return "", err
	}
	return formatConditions(set), nil
}

// conditionSet has one bit per entry of conditions.
type conditionSet uint8

func parseConditions(s string) (conditionSet, error) {
	var set conditionSet
	words := strings.FieldsFunc(s, func(r rune) bool { return r == ',' || isSpace(r) })
	for _, w := range words {
		w = strings.ToLower(w)
		if w == WhenAlways {
			continue
		}
		found := false
		for i, c := range conditions() {
			if w == c {
				set |= 1 << i
				found = true
			}
		}
		if !found {
			return 0, &SyntaxError{What: "when", Input: s, Msg: fmt.Sprintf("unknown condition %q; %s", w, validWhen)}
		}
	}
	return set, nil
}

func formatConditions(set conditionSet) string {
	var names []string
	for i, c := range conditions() {
		if set&(1<<i) != 0 {
			names = append(names, c)
		}
	}
	if len(names) == 0 {
		return WhenAlways
	}
	return strings.Join(names, ",")
}

// mergeWhen returns the conjunction of two When strings (both canonical or
// empty): an action that several rules ask for under different conditions
// runs only when all of them hold.
func mergeWhen(a, b string) string {
	sa, errA := parseConditions(a)
	sb, errB := parseConditions(b)
	if errA != nil || errB != nil {
		// Not produced by Compile; keep both texts so Decide refuses them.
		return a + "," + b
	}
	return formatConditions(sa | sb)
}

// Decide splits the plan's actions into those to run now, in plan order,
// and those deferred or skipped, with the reason. Each action is judged on
// its own When: asterisk-up is evaluated first (a down Asterisk skips the
// action), then no-channels (channels up defer it). An action whose When
// cannot be parsed is deferred, never run.
func Decide(p Plan, st HostState) (run []Action, deferred []Deferred) {
	for _, a := range p.Actions {
		reason, skipped, ok := evaluate(a.When, st)
		if ok {
			run = append(run, a)
			continue
		}
		deferred = append(deferred, Deferred{Action: a, Reason: reason, Skipped: skipped})
	}
	return run, deferred
}

// evaluate reports whether when holds in st; if not, why, and whether the
// action is skipped rather than deferred.
func evaluate(when string, st HostState) (reason string, skipped, ok bool) {
	set, err := parseConditions(when)
	if err != nil {
		return "bad condition: " + err.Error(), false, false
	}
	for i, c := range conditions() {
		if set&(1<<i) == 0 {
			continue
		}
		switch c {
		case WhenAsteriskUp:
			if !st.AsteriskUp {
				return "asterisk-up: Asterisk is down (it reads the new files when it starts)", true, false
			}
		case WhenNoChannels:
			if st.ActiveChannels != 0 {
				return fmt.Sprintf("no-channels: %d active channel%s", st.ActiveChannels, plural(st.ActiveChannels)), false, false
			}
		}
	}
	return "", false, true
}

func plural(n int) string {
	if n == 1 {
		return ""
	}
	return "s"
}
