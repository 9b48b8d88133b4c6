package rules

import (
	"errors"
	"testing"
)

func TestParseCheck(t *testing.T) {
	tests := []struct {
		in   string
		want Check
	}{
		{"ami", Check{Kind: CheckAMI}},
		{" AMI ", Check{Kind: CheckAMI}},
		{"log", Check{Kind: CheckLog}},
		{"Log", Check{Kind: CheckLog}},
		{"./log", Check{Kind: CheckCommand, Command: "./log"}},
		{"asterisk -rx 'dialplan show' | grep -q from-internal", Check{Kind: CheckCommand, Command: "asterisk -rx 'dialplan show' | grep -q from-internal"}},
		{"  /usr/local/bin/check-pjsip  ", Check{Kind: CheckCommand, Command: "/usr/local/bin/check-pjsip"}},
		{"ami log", Check{Kind: CheckCommand, Command: "ami log"}},
	}
	for _, tt := range tests {
		got, err := ParseCheck(tt.in)
		if err != nil {
			t.Errorf("ParseCheck(%q): %v", tt.in, err)
			continue
		}
		if got.Kind != tt.want.Kind || got.Command != tt.want.Command || got.Rule != "" || got.Paths != nil {
			t.Errorf("ParseCheck(%q) = %+v, want %+v", tt.in, got, tt.want)
		}
		again, err := ParseCheck(got.String())
		if err != nil || again.Kind != got.Kind || again.Command != got.Command {
			t.Errorf("ParseCheck(%q.String() = %q) = %+v, %v", tt.in, got.String(), again, err)
		}
	}
}

func TestParseCheckErrors(t *testing.T) {
	tests := []struct{ in, want string }{
		{"", `check "": empty; valid: ami, log, or a shell command (exit 0 passes)`},
		{" \t", `check " \t": empty; valid: ami, log, or a shell command (exit 0 passes)`},
		{"a\x00", `check "a\x00": contains a NUL byte`},
	}
	for _, tt := range tests {
		_, err := ParseCheck(tt.in)
		if err == nil || err.Error() != tt.want {
			t.Errorf("ParseCheck(%q) error = %v, want %s", tt.in, err, tt.want)
		}
		var se *SyntaxError
		if !errors.As(err, &se) || se.What != "check" {
			t.Errorf("ParseCheck(%q) error %#v is not a *SyntaxError for the check", tt.in, err)
		}
	}
}

func TestCheckKindString(t *testing.T) {
	for k, want := range map[CheckKind]string{CheckAMI: "ami", CheckLog: "log", CheckCommand: "command", CheckKind(0): "CheckKind(0)"} {
		if got := k.String(); got != want {
			t.Errorf("CheckKind(%d).String() = %q, want %q", k, got, want)
		}
	}
}
