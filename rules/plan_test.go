package rules

import (
	"fmt"
	"math/rand/v2"
	"reflect"
	"strings"
	"testing"

	"pbxsync/internal/config"
)

// actionLine renders an action as "reload pbx_config.so | always | builtin: extensions*.conf | extensions.conf".
func actionLine(a Action) string {
	return fmt.Sprintf("%s | %s | %s | %s", a.String(), a.When, a.Rule, strings.Join(a.Paths, " "))
}

// checkLine renders a check as "log | builtin: extensions*.conf | extensions.conf".
func checkLine(c Check) string {
	return fmt.Sprintf("%s | %s | %s", c.String(), c.Rule, strings.Join(c.Paths, " "))
}

func lines[T any](xs []T, f func(T) string) []string {
	var out []string
	for _, x := range xs {
		out = append(out, f(x))
	}
	return out
}

func TestPlan(t *testing.T) {
	type want struct {
		actions, checks, superseded, ignored []string
	}
	const (
		bExt   = "builtin: extensions*.conf"
		bPjsip = "builtin: pjsip*.conf"
	)
	tests := []struct {
		name     string
		rules    []config.Rule
		builtins bool
		changed  []string
		want     want
	}{
		{"extensions.conf alone: exactly one reload of pbx_config.so", nil, true,
			[]string{"extensions.conf"},
			want{
				actions: []string{"reload pbx_config.so | always | " + bExt + " | extensions.conf"},
				checks:  []string{"ami | " + bExt + " | extensions.conf", "log | " + bExt + " | extensions.conf"},
			}},
		{"five pjsip files: one reload of res_pjsip.so", nil, true,
			[]string{"pjsip_trunks.conf", "pjsip.conf", "pjsip_wizard.conf", "pjsip.endpoint.conf", "pjsip_custom.conf"},
			want{
				actions: []string{"reload res_pjsip.so | always | builtin: pjsip*.conf, builtin: pjsip_wizard*.conf | pjsip.conf pjsip.endpoint.conf pjsip_custom.conf pjsip_trunks.conf pjsip_wizard.conf"},
				checks: []string{
					"ami | builtin: pjsip*.conf, builtin: pjsip_wizard*.conf | pjsip.conf pjsip.endpoint.conf pjsip_custom.conf pjsip_trunks.conf pjsip_wizard.conf",
					"log | builtin: pjsip*.conf, builtin: pjsip_wizard*.conf | pjsip.conf pjsip.endpoint.conf pjsip_custom.conf pjsip_trunks.conf pjsip_wizard.conf",
				},
			}},
		{"ten dialplan files, duplicates and subdirectories: one reload", nil, true,
			[]string{"extensions.conf", "extensions.conf", "extensions_custom.conf", "custom/extensions_a.conf", "extensions_additional.conf"},
			want{
				actions: []string{"reload pbx_config.so | always | " + bExt + " | custom/extensions_a.conf extensions.conf extensions_additional.conf extensions_custom.conf"},
				checks: []string{
					"ami | " + bExt + " | custom/extensions_a.conf extensions.conf extensions_additional.conf extensions_custom.conf",
					"log | " + bExt + " | custom/extensions_a.conf extensions.conf extensions_additional.conf extensions_custom.conf",
				},
			}},
		{"modules.conf + extensions.conf: only a restart", nil, true,
			[]string{"extensions.conf", "modules.conf"},
			want{
				actions:    []string{"restart when convenient | always | builtin: modules.conf | modules.conf"},
				checks:     []string{"ami | " + bExt + ", builtin: modules.conf | extensions.conf modules.conf", "log | " + bExt + " | extensions.conf"},
				superseded: []string{"reload pbx_config.so | always | " + bExt + " | extensions.conf"},
			}},
		{"user override: a CLI command instead of the builtin reload",
			[]config.Rule{{Match: []string{"extensions.conf"}, Action: "command dialplan reload"}}, true,
			[]string{"extensions.conf", "extensions_custom.conf"},
			want{
				actions: []string{
					"reload pbx_config.so | always | " + bExt + " | extensions_custom.conf",
					"command dialplan reload | always | job.rule[0] | extensions.conf",
				},
				checks: []string{"ami | " + bExt + " | extensions_custom.conf", "log | " + bExt + " | extensions_custom.conf"},
			}},
		{"user override by a different module and condition",
			[]config.Rule{{Match: []string{"pjsip*.conf"}, Action: "reload res_pjsip.so", When: "no-channels", Check: "ami"}}, true,
			[]string{"pjsip.conf", "pjsip_a.conf"},
			want{
				actions: []string{"reload res_pjsip.so | no-channels | job.rule[0] | pjsip.conf pjsip_a.conf"},
				checks:  []string{"ami | job.rule[0] | pjsip.conf pjsip_a.conf"},
			}},
		{"user rule and builtin asking for the same module: one reload, both origins, conditions joined",
			[]config.Rule{{Match: []string{"pjsip.conf"}, Action: "reload RES_PJSIP", When: "no-channels"}}, true,
			[]string{"pjsip_custom.conf", "pjsip.conf"},
			want{
				actions: []string{"reload RES_PJSIP | no-channels | job.rule[0], " + bPjsip + " | pjsip.conf pjsip_custom.conf"},
				checks:  []string{"ami | " + bPjsip + " | pjsip_custom.conf", "log | " + bPjsip + " | pjsip_custom.conf"},
			}},
		{"check-only rule adds its check and keeps the builtin action",
			[]config.Rule{{Match: []string{"pjsip*.conf"}, Check: "/usr/local/bin/check-endpoints"}}, true,
			[]string{"pjsip.conf"},
			want{
				actions: []string{"reload res_pjsip.so | always | " + bPjsip + " | pjsip.conf"},
				checks: []string{
					"ami | " + bPjsip + " | pjsip.conf",
					"log | " + bPjsip + " | pjsip.conf",
					"/usr/local/bin/check-endpoints | job.rule[0] | pjsip.conf",
				},
			}},
		{"a path listed twice, two rules asking one check of it: each path once",
			[]config.Rule{{Match: []string{"pjsip*.conf"}, Check: "ami"}, {Match: []string{"*.conf"}, Check: "ami"}}, true,
			[]string{"pjsip_b.conf", "pjsip.conf", "pjsip_b.conf"},
			want{
				actions: []string{"reload res_pjsip.so | always | " + bPjsip + " | pjsip.conf pjsip_b.conf"},
				checks: []string{
					"ami | job.rule[0], job.rule[1], " + bPjsip + " | pjsip.conf pjsip_b.conf",
					"log | " + bPjsip + " | pjsip.conf pjsip_b.conf",
				},
			}},
		{"none suppresses the builtin for its paths",
			[]config.Rule{{Match: []string{"voicemail.conf"}, Action: "none"}}, true,
			[]string{"voicemail.conf", "queues.conf"},
			want{
				actions: []string{"reload app_queue.so | always | builtin: queues.conf | queues.conf"},
				checks:  []string{"ami | builtin: queues.conf | queues.conf", "log | builtin: queues.conf | queues.conf"},
				ignored: []string{"voicemail.conf"},
			}},
		{"first rule with an action wins; a losing rule adds nothing; check-only rules anywhere add",
			[]config.Rule{
				{Match: []string{"*.conf"}, Check: "log"},
				{Match: []string{"extensions.conf"}, Action: "reload pbx_config.so", Check: "ami"},
				{Match: []string{"*.conf"}, Action: "shell /bin/true", Check: "/bin/verify-all"},
				{Match: []string{"extensions.conf"}, Check: "/bin/verify-dialplan"},
			}, false,
			[]string{"extensions.conf", "foo.conf"},
			want{
				actions: []string{
					"reload pbx_config.so | always | job.rule[1] | extensions.conf",
					"shell /bin/true | always | job.rule[2] | foo.conf",
				},
				checks: []string{
					"ami | job.rule[1] | extensions.conf",
					"log | job.rule[0] | extensions.conf foo.conf",
					"/bin/verify-all | job.rule[2] | foo.conf",
					"/bin/verify-dialplan | job.rule[3] | extensions.conf",
				},
			}},
		{"sounds and AGI scripts: no action", nil, true,
			[]string{"sounds/en/custom/welcome.wav", "sounds/en/custom/bye.gsm", "agi-bin/lookup.agi"},
			want{ignored: []string{"agi-bin/lookup.agi", "sounds/en/custom/bye.gsm", "sounds/en/custom/welcome.wav"}}},
		{"builtins off: only user rules",
			[]config.Rule{{Match: []string{"sip.conf"}, Action: "command sip reload"}}, false,
			[]string{"extensions.conf", "sip.conf"},
			want{
				actions: []string{"command sip reload | always | job.rule[0] | sip.conf"},
				ignored: []string{"extensions.conf"},
			}},
		{"no paths: empty plan", nil, true, nil, want{}},
		{"restart: at most one, the strongest, last; reloads superseded; commands and shells kept",
			[]config.Rule{
				{Match: []string{"asterisk.conf"}, Action: "restart now", When: "no-channels"},
				{Match: []string{"hooks/*.sh"}, Action: "shell hooks/after.sh"},
				{Match: []string{"sip.conf"}, Action: "command sip reload"},
				{Match: []string{"res_odbc.conf"}, Action: "restart gracefully"},
			}, true,
			[]string{"sorcery.conf", "asterisk.conf", "hooks/a.sh", "hooks/b.sh", "sip.conf", "modules.conf", "res_odbc.conf", "manager.conf"},
			want{
				actions: []string{
					"command sip reload | always | job.rule[2] | sip.conf",
					"shell hooks/after.sh | always | job.rule[1] | hooks/a.sh hooks/b.sh",
					"restart now | no-channels | job.rule[0], builtin: modules.conf, job.rule[3], builtin: sorcery.conf | asterisk.conf modules.conf res_odbc.conf sorcery.conf",
				},
				checks: []string{
					"ami | builtin: manager.conf, builtin: modules.conf, builtin: sorcery.conf | manager.conf modules.conf sorcery.conf",
					"log | builtin: manager.conf | manager.conf",
				},
				superseded: []string{"reload manager | always | builtin: manager.conf | manager.conf"},
			}},
		{"reload order: core, res_, chan_, app_, back ends, dialplan last", nil, true,
			[]string{"extensions.conf", "voicemail.conf", "sip.conf", "pjsip.conf", "res_odbc.conf", "manager.conf", "logger.conf", "cdr_custom.conf", "extensions.ael", "cdr.conf", "iax.conf"},
			want{
				actions: []string{
					"reload logger | always | builtin: logger.conf | logger.conf",
					"reload manager | always | builtin: manager.conf | manager.conf",
					"reload cdr | always | builtin: cdr.conf | cdr.conf",
					"reload res_odbc.so | always | builtin: res_odbc.conf | res_odbc.conf",
					"reload res_pjsip.so | always | " + bPjsip + " | pjsip.conf",
					"reload chan_sip.so | always | builtin: sip.conf | sip.conf",
					"reload chan_iax2.so | always | builtin: iax.conf | iax.conf",
					"reload app_voicemail.so | always | builtin: voicemail.conf | voicemail.conf",
					"reload cdr_custom.so | always | builtin: cdr_*.conf | cdr_custom.conf",
					"reload pbx_config.so | always | " + bExt + " | extensions.conf",
					"reload pbx_ael.so | always | builtin: extensions*.ael | extensions.ael",
				},
				checks: []string{
					"ami | builtin: cdr.conf, builtin: cdr_*.conf, builtin: extensions*.ael, " + bExt + ", builtin: iax.conf, builtin: logger.conf, builtin: manager.conf, " + bPjsip + ", builtin: res_odbc.conf, builtin: sip.conf, builtin: voicemail.conf | cdr.conf cdr_custom.conf extensions.ael extensions.conf iax.conf logger.conf manager.conf pjsip.conf res_odbc.conf sip.conf voicemail.conf",
					"log | builtin: cdr.conf, builtin: cdr_*.conf, builtin: extensions*.ael, " + bExt + ", builtin: iax.conf, builtin: logger.conf, builtin: manager.conf, " + bPjsip + ", builtin: res_odbc.conf, builtin: sip.conf, builtin: voicemail.conf | cdr.conf cdr_custom.conf extensions.ael extensions.conf iax.conf logger.conf manager.conf pjsip.conf res_odbc.conf sip.conf voicemail.conf",
				},
			}},
		{"user modules: unknown res_ after known res_, unknown others by name",
			[]config.Rule{
				{Match: []string{"b.conf"}, Action: "reload zz_custom.so"},
				{Match: []string{"a.conf"}, Action: "reload res_foo.so"},
				{Match: []string{"c.conf"}, Action: "reload aa_custom.so"},
				{Match: []string{"d.conf"}, Action: "reload pbx_config"},
			}, true,
			[]string{"a.conf", "b.conf", "c.conf", "d.conf", "extensions.conf", "rtp.conf"},
			want{
				actions: []string{
					"reload res_rtp_asterisk.so | always | builtin: rtp.conf | rtp.conf",
					"reload res_foo.so | always | job.rule[1] | a.conf",
					"reload aa_custom.so | always | job.rule[2] | c.conf",
					"reload zz_custom.so | always | job.rule[0] | b.conf",
					"reload pbx_config | always | job.rule[3], " + bExt + " | d.conf extensions.conf",
				},
				checks: []string{
					"ami | " + bExt + ", builtin: rtp.conf | extensions.conf rtp.conf",
					"log | " + bExt + ", builtin: rtp.conf | extensions.conf rtp.conf",
				},
			}},
		{"AMI and shell commands deduped, in rule order",
			[]config.Rule{
				{Match: []string{"x/*"}, Action: "shell ./b.sh"},
				{Match: []string{"y/*"}, Action: "command  sip   reload"},
				{Match: []string{"z/*"}, Action: "ami-command sip reload"},
				{Match: []string{"w/*"}, Action: "shell ./a.sh"},
				{Match: []string{"v/*"}, Action: "command dialplan reload"},
			}, false,
			[]string{"v/1", "w/1", "x/1", "x/2", "y/1", "y/2", "z/1"},
			want{
				actions: []string{
					"command sip reload | always | job.rule[1], job.rule[2] | y/1 y/2 z/1",
					"command dialplan reload | always | job.rule[4] | v/1",
					"shell ./b.sh | always | job.rule[0] | x/1 x/2",
					"shell ./a.sh | always | job.rule[3] | w/1",
				},
			}},
	}
	for _, tt := range tests {
		r, err := Compile(tt.rules, tt.builtins)
		if err != nil {
			t.Fatalf("%s: Compile: %v", tt.name, err)
		}
		p, err := r.Plan(tt.changed)
		if err != nil {
			t.Fatalf("%s: Plan: %v", tt.name, err)
		}
		got := want{
			actions:    lines(p.Actions, actionLine),
			checks:     lines(p.Checks, checkLine),
			superseded: lines(p.Superseded, actionLine),
			ignored:    p.Ignored,
		}
		for _, c := range []struct {
			what      string
			got, want []string
		}{
			{"actions", got.actions, tt.want.actions},
			{"checks", got.checks, tt.want.checks},
			{"superseded", got.superseded, tt.want.superseded},
			{"ignored", got.ignored, tt.want.ignored},
		} {
			if !reflect.DeepEqual(c.got, c.want) {
				t.Errorf("%s: %s\n got: %s\nwant: %s", tt.name, c.what, strings.Join(c.got, "\n      "), strings.Join(c.want, "\n      "))
			}
		}
	}
}

func TestPlanDeterministic(t *testing.T) {
	r, err := Compile([]config.Rule{
		{Match: []string{"pjsip*.conf"}, Check: "./check-pjsip"},
		{Match: []string{"extensions_test.conf"}, Action: "none"},
		{Match: []string{"hooks/**"}, Action: "shell ./hook.sh", When: "asterisk-up"},
		{Match: []string{"sip_*.conf"}, Action: "command sip reload"},
		{Match: []string{"queues.conf"}, Action: "reload app_queue", When: "no-channels"},
	}, true)
	if err != nil {
		t.Fatal(err)
	}
	changed := []string{
		"extensions.conf", "extensions_custom.conf", "extensions_test.conf", "pjsip.conf", "pjsip_a.conf",
		"pjsip_b.conf", "pjsip_c.conf", "pjsip_notify.conf", "sip_custom.conf", "queues.conf", "queues_x.conf",
		"hooks/a/b.sh", "hooks/c.sh", "manager.conf", "cdr_custom.conf", "cel_odbc.conf", "sounds/x.wav",
		"voicemail.conf", "res_odbc.conf", "logger.conf", "features.conf", "musiconhold.conf",
	}
	want, err := r.Plan(changed)
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range 200 {
		in := append([]string(nil), changed...)
		rng.Shuffle(len(in), func(a, b int) { in[a], in[b] = in[b], in[a] })
		in = append(in, in[:rng.IntN(len(in))]...) // duplicates too
		got, err := r.Plan(in)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("run %d: plan differs for shuffled input %q:\n got %+v\nwant %+v", i, in, got, want)
		}
	}
	// With a restart in the set, too.
	withRestart := append([]string{"modules.conf"}, changed...)
	first, _ := r.Plan(withRestart)
	for range 50 {
		rng.Shuffle(len(withRestart), func(a, b int) { withRestart[a], withRestart[b] = withRestart[b], withRestart[a] })
		if got, _ := r.Plan(withRestart); !reflect.DeepEqual(got, first) {
			t.Fatal("plan with restart differs for shuffled input")
		}
	}
	if n := len(first.Actions); n == 0 || first.Actions[n-1].Kind != Restart {
		t.Fatalf("restart is not last: %+v", first.Actions)
	}
}

func TestPlanDoesNotAliasInput(t *testing.T) {
	r, _ := Compile(nil, true)
	in := []string{"pjsip_b.conf", "pjsip_a.conf"}
	p, err := r.Plan(in)
	if err != nil {
		t.Fatal(err)
	}
	if in[0] != "pjsip_b.conf" {
		t.Fatal("Plan reordered its input")
	}
	p.Actions[0].Paths[0] = "changed"
	p2, _ := r.Plan(in)
	if p2.Actions[0].Paths[0] != "pjsip_a.conf" {
		t.Fatal("plans share state")
	}
}

func TestPlanBadPaths(t *testing.T) {
	r, _ := Compile(nil, true)
	for _, p := range []string{"", "/etc/asterisk/extensions.conf", "../extensions.conf", "a//b.conf", "./x.conf"} {
		if _, err := r.Plan([]string{"sip.conf", p}); err == nil || !strings.HasPrefix(err.Error(), "rules: plan: bad path") {
			t.Errorf("Plan(%q) error = %v", p, err)
		}
	}
}

func TestPlanNilRules(t *testing.T) {
	var r *Rules
	p, err := r.Plan([]string{"extensions.conf"})
	if err != nil || len(p.Actions) != 0 || !reflect.DeepEqual(p.Ignored, []string{"extensions.conf"}) {
		t.Fatalf("nil rules: %+v, %v", p, err)
	}
}

// TestPlanThenDecide runs the whole pure pipeline once.
func TestPlanThenDecide(t *testing.T) {
	r, err := Compile([]config.Rule{{Match: []string{"modules.conf"}, Action: "restart", When: "no-channels"}}, true)
	if err != nil {
		t.Fatal(err)
	}
	p, _ := r.Plan([]string{"modules.conf", "extensions.conf"})
	run, deferred := Decide(p, HostState{AsteriskUp: true, ActiveChannels: 2})
	if len(run) != 0 || len(deferred) != 1 || deferred[0].Action.Command != RestartWhenConvenient ||
		deferred[0].Reason != "no-channels: 2 active channels" || deferred[0].Skipped {
		t.Fatalf("run %+v deferred %+v", run, deferred)
	}
	run, deferred = Decide(p, HostState{AsteriskUp: true})
	if len(run) != 1 || len(deferred) != 0 {
		t.Fatalf("idle: run %+v deferred %+v", run, deferred)
	}
}
