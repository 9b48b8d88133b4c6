package rules

import (
	"errors"
	"strings"
	"testing"

	"pbxsync/internal/config"
)

func TestCompileErrors(t *testing.T) {
	ok := config.Rule{Match: []string{"extensions.conf"}, Action: "reload pbx_config.so"}
	tests := []struct {
		name  string
		rules []config.Rule
		want  []string // one line per error, in order
	}{
		{"unknown verb names the rule, the input, the word and the valid forms",
			[]config.Rule{ok, ok, {Match: []string{"x.conf"}, Action: "relaod x"}},
			[]string{`rule[2]: action "relaod x": unknown verb "relaod"; valid: reload MODULE, command CLI, restart [when convenient|gracefully|now], shell CMD, service start|stop|restart, none`}},
		{"no match",
			[]config.Rule{{Action: "restart"}},
			[]string{`rule[0]: match: at least one glob is required`}},
		{"bad globs, each reported",
			[]config.Rule{{Match: []string{"a/../x.conf", "ok.conf", "[z-"}, Action: "none"}},
			[]string{
				`rule[0]: match "a/../x.conf": bad pattern "a/../x.conf": contains ".."; patterns are relative to the job root`,
				`rule[0]: match "[z-": bad pattern "[z-": syntax error in pattern`,
			}},
		{"neither action nor check",
			[]config.Rule{ok, {Match: []string{"a"}}},
			[]string{`rule[1]: neither action nor check: a rule needs at least one`}},
		{"when without action",
			[]config.Rule{{Match: []string{"a"}, Check: "log", When: "no-channels"}},
			[]string{`rule[0]: when "no-channels": needs an action: conditions apply to actions, not to checks`}},
		{"bad when",
			[]config.Rule{{Match: []string{"a"}, Action: "restart", When: "idle"}},
			[]string{`rule[0]: when "idle": unknown condition "idle"; valid: always, asterisk-up, no-channels, or several joined with ','`}},
		{"blank check",
			[]config.Rule{{Match: []string{"a"}, Action: "restart", Check: "  "}},
			[]string{`rule[0]: check "  ": empty; valid: ami, log, or a shell command (exit 0 passes)`}},
		{"blank action",
			[]config.Rule{{Match: []string{"a"}, Action: " "}},
			[]string{`rule[0]: action " ": empty; ` + validActions}},
		{"all rules are checked",
			[]config.Rule{{Match: []string{"a"}, Action: "reload"}, ok, {Match: []string{"b"}, Action: "restart soon", Check: "log"}},
			[]string{
				`rule[0]: action "reload": reload needs a MODULE, e.g. reload pbx_config.so (to reload everything use: command core reload)`,
				`rule[2]: action "restart soon": unknown restart mode "soon"; valid: restart, restart when convenient, restart gracefully, restart now`,
			}},
	}
	for _, tt := range tests {
		r, err := Compile(tt.rules, true)
		if err == nil {
			t.Errorf("%s: no error", tt.name)
			continue
		}
		if r != nil {
			t.Errorf("%s: rules returned with an error", tt.name)
		}
		if got := strings.Split(err.Error(), "\n"); strings.Join(got, "\n") != strings.Join(tt.want, "\n") {
			t.Errorf("%s:\n got: %s\nwant: %s", tt.name, strings.Join(got, "\n      "), strings.Join(tt.want, "\n      "))
		}
		var re *RuleError
		if !errors.As(err, &re) {
			t.Errorf("%s: error is not a *RuleError", tt.name)
		}
	}
}

func TestCompileRuleErrorUnwraps(t *testing.T) {
	_, err := Compile([]config.Rule{{Match: []string{"a"}}, {Match: []string{"b"}, Action: "relaod x"}}, false)
	var re *RuleError
	if !errors.As(err, &re) || re.Index != 0 {
		t.Fatalf("first RuleError = %+v", re)
	}
	var se *SyntaxError
	if !errors.As(err, &se) || se.What != "action" || se.Input != "relaod x" {
		t.Fatalf("SyntaxError = %+v", se)
	}
}

func TestCompileOK(t *testing.T) {
	r, err := Compile([]config.Rule{
		{Match: []string{"extensions.conf", "sounds/**"}, Action: "command dialplan reload", When: "no-channels", Check: "log"},
		{Match: []string{"*.conf"}, Check: "/usr/local/bin/verify"},
		{Match: []string{"x"}, Action: "none"},
	}, false)
	if err != nil {
		t.Fatal(err)
	}
	if r.Len() != 3 || r.UseBuiltins() {
		t.Fatalf("Len %d UseBuiltins %v", r.Len(), r.UseBuiltins())
	}
	u := r.user[0]
	if u.origin != "job.rule[0]" || u.action.Rule != "job.rule[0]" || u.action.When != "no-channels" || u.check.Kind != CheckLog || u.check.Rule != "job.rule[0]" {
		t.Errorf("rule 0 compiled to %+v action %+v check %+v", u, u.action, u.check)
	}
	if r.user[1].action != nil || r.user[1].check.Command != "/usr/local/bin/verify" {
		t.Errorf("rule 1 compiled to %+v", r.user[1])
	}
	if r.user[2].action.When != "always" {
		t.Errorf("rule 2 When = %q, want always", r.user[2].action.When)
	}

	b, err := Compile(nil, true)
	if err != nil || b.Len() != 0 || !b.UseBuiltins() {
		t.Fatalf("Compile(nil, true) = %+v, %v", b, err)
	}
	var nilRules *Rules
	if nilRules.Len() != 0 || nilRules.UseBuiltins() {
		t.Fatal("nil Rules is not empty")
	}
}
