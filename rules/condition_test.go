package rules

import (
	"reflect"
	"testing"
)

func TestParseWhen(t *testing.T) {
	tests := []struct{ in, want string }{
		{"", "always"},
		{"always", "always"},
		{"ALWAYS", "always"},
		{"no-channels", "no-channels"},
		{"asterisk-up", "asterisk-up"},
		{"no-channels,asterisk-up", "asterisk-up,no-channels"},
		{" no-channels  asterisk-up ", "asterisk-up,no-channels"},
		{"always, no-channels, no-channels", "no-channels"},
	}
	for _, tt := range tests {
		got, err := ParseWhen(tt.in)
		if err != nil || got != tt.want {
			t.Errorf("ParseWhen(%q) = %q, %v; want %q", tt.in, got, err, tt.want)
		}
	}
	for in, want := range map[string]string{
		"idle":              `when "idle": unknown condition "idle"; ` + validWhen,
		"no-channels,later": `when "no-channels,later": unknown condition "later"; ` + validWhen,
	} {
		if _, err := ParseWhen(in); err == nil || err.Error() != want {
			t.Errorf("ParseWhen(%q) error = %v, want %s", in, err, want)
		}
	}
}

func TestMergeWhen(t *testing.T) {
	tests := []struct{ a, b, want string }{
		{"always", "always", "always"},
		{"", "always", "always"},
		{"always", "no-channels", "no-channels"},
		{"no-channels", "asterisk-up", "asterisk-up,no-channels"},
		{"asterisk-up,no-channels", "no-channels", "asterisk-up,no-channels"},
		{"bogus", "always", "bogus,always"}, // kept unparseable: Decide refuses it
	}
	for _, tt := range tests {
		if got := mergeWhen(tt.a, tt.b); got != tt.want {
			t.Errorf("mergeWhen(%q, %q) = %q, want %q", tt.a, tt.b, got, tt.want)
		}
	}
}

func TestDecide(t *testing.T) {
	reload := Action{Kind: Reload, Module: "pbx_config.so", When: "always"}
	legacy := Action{Kind: Reload, Module: "res_pjsip.so"} // When "" is always
	idle := Action{Kind: Restart, Command: RestartNow, When: "no-channels"}
	up := Action{Kind: AMICommand, Command: "sip reload", When: "asterisk-up"}
	both := Action{Kind: Shell, Command: "notify", When: "asterisk-up,no-channels"}
	bad := Action{Kind: Shell, Command: "x", When: "sometimes"}
	plan := Plan{Actions: []Action{reload, legacy, up, both, idle}}

	tests := []struct {
		name     string
		plan     Plan
		st       HostState
		run      []Action
		deferred []Deferred
	}{
		{"up and idle: everything runs in order", plan, HostState{AsteriskUp: true},
			[]Action{reload, legacy, up, both, idle}, nil},
		{"calls up: no-channels deferred", plan, HostState{AsteriskUp: true, ActiveChannels: 3},
			[]Action{reload, legacy, up},
			[]Deferred{
				{Action: both, Reason: "no-channels: 3 active channels"},
				{Action: idle, Reason: "no-channels: 3 active channels"},
			}},
		{"one call", Plan{Actions: []Action{idle}}, HostState{AsteriskUp: true, ActiveChannels: 1},
			nil, []Deferred{{Action: idle, Reason: "no-channels: 1 active channel"}}},
		{"asterisk down: asterisk-up skipped, always runs", plan, HostState{},
			[]Action{reload, legacy, idle},
			[]Deferred{
				{Action: up, Reason: "asterisk-up: Asterisk is down (it reads the new files when it starts)", Skipped: true},
				{Action: both, Reason: "asterisk-up: Asterisk is down (it reads the new files when it starts)", Skipped: true},
			}},
		{"down with channels reported: asterisk-up is judged first", Plan{Actions: []Action{both}}, HostState{ActiveChannels: 2},
			nil, []Deferred{{Action: both, Reason: "asterisk-up: Asterisk is down (it reads the new files when it starts)", Skipped: true}}},
		{"unparseable condition is never run", Plan{Actions: []Action{bad}}, HostState{AsteriskUp: true},
			nil, []Deferred{{Action: bad, Reason: `bad condition: when "sometimes": unknown condition "sometimes"; ` + validWhen}}},
		{"empty plan", Plan{}, HostState{AsteriskUp: true}, nil, nil},
	}
	for _, tt := range tests {
		run, deferred := Decide(tt.plan, tt.st)
		if !reflect.DeepEqual(run, tt.run) {
			t.Errorf("%s: run = %+v\nwant %+v", tt.name, run, tt.run)
		}
		if !reflect.DeepEqual(deferred, tt.deferred) {
			t.Errorf("%s: deferred = %+v\nwant %+v", tt.name, deferred, tt.deferred)
		}
	}
}
