package rules

import (
	"errors"
	"strings"
	"testing"
)

func TestParseAction(t *testing.T) {
	tests := []struct {
		in   string
		want Action
	}{
		{"reload pbx_config.so", Action{Kind: Reload, Module: "pbx_config.so"}},
		{"reload res_pjsip.so", Action{Kind: Reload, Module: "res_pjsip.so"}},
		{"  Reload   manager  ", Action{Kind: Reload, Module: "manager"}},
		{"RELOAD pbx_config", Action{Kind: Reload, Module: "pbx_config"}},
		{"command sip reload", Action{Kind: AMICommand, Command: "sip reload"}},
		{"command   dialplan    reload ", Action{Kind: AMICommand, Command: "dialplan reload"}},
		{"ami-command pjsip reload", Action{Kind: AMICommand, Command: "pjsip reload"}},
		{"command core show restart", Action{Kind: AMICommand, Command: "core show restart"}},
		{"restart", Action{Kind: Restart, Command: RestartWhenConvenient}},
		{"restart when convenient", Action{Kind: Restart, Command: RestartWhenConvenient}},
		{"restart  WHEN   Convenient", Action{Kind: Restart, Command: RestartWhenConvenient}},
		{"restart gracefully", Action{Kind: Restart, Command: RestartGracefully}},
		{"restart now", Action{Kind: Restart, Command: RestartNow}},
		{"shell /usr/local/bin/foo", Action{Kind: Shell, Command: "/usr/local/bin/foo"}},
		{"shell  notify --to ops  'a  b' ", Action{Kind: Shell, Command: "notify --to ops  'a  b'"}},
		{"shell\tprintf 'a\\n'\necho b", Action{Kind: Shell, Command: "printf 'a\\n'\necho b"}},
		{"service restart", Action{Kind: Service, Command: "restart"}},
		{"Service START", Action{Kind: Service, Command: "start"}},
		{"service stop", Action{Kind: Service, Command: "stop"}},
		{"none", Action{Kind: None}},
		{" NONE ", Action{Kind: None}},
	}
	for _, tt := range tests {
		got, err := ParseAction(tt.in)
		if err != nil {
			t.Errorf("ParseAction(%q): %v", tt.in, err)
			continue
		}
		if got.Kind != tt.want.Kind || got.Module != tt.want.Module || got.Command != tt.want.Command ||
			got.When != "" || got.Rule != "" || got.Paths != nil {
			t.Errorf("ParseAction(%q) = %+v, want %+v", tt.in, got, tt.want)
		}
		// String is read back to the same action.
		again, err := ParseAction(got.String())
		if err != nil || again.Kind != got.Kind || again.Module != got.Module || again.Command != got.Command {
			t.Errorf("ParseAction(%q.String() = %q) = %+v, %v; want %+v", tt.in, got.String(), again, err, got)
		}
	}
}

func TestParseActionErrors(t *testing.T) {
	tests := []struct {
		in, want string // want: the whole error text
	}{
		{"relaod x", `action "relaod x": unknown verb "relaod"; ` + validActions},
		{"service reboot", `action "service reboot": service needs start, stop or restart, e.g. service restart`},
		{"", `action "": empty; ` + validActions},
		{"   ", `action "   ": empty; ` + validActions},
		{"reload", `action "reload": reload needs a MODULE, e.g. reload pbx_config.so (to reload everything use: command core reload)`},
		{"reload a.so b.so", `action "reload a.so b.so": reload takes one MODULE, got 2 words; write one rule per module`},
		{"reload ../x.so", `action "reload ../x.so": bad module name "../x.so": must start with a letter, digit or '_'`},
		{"reload res_pjsip.so;rm", `action "reload res_pjsip.so;rm": bad module name "res_pjsip.so;rm": only letters, digits, '_', '-' and '.' are allowed`},
		{"reload " + strings.Repeat("a", 129), `action "reload ` + strings.Repeat("a", 129) + `": module name longer than 128 bytes`},
		{"command", `action "command": command needs a CLI command, e.g. command sip reload`},
		{"ami-command  ", `action "ami-command  ": ami-command needs a CLI command, e.g. ami-command sip reload`},
		{"command sip reload\r\nAction: Originate", `action "command sip reload\r\nAction: Originate": CLI command contains a control character (newline, tab …); AMI cannot carry it`},
		{"command core restart now", `action "command core restart now": use the restart action (restart [when convenient|gracefully|now]) instead of a restart command, so that it runs last and at most once`},
		{"restart later", `action "restart later": unknown restart mode "later"; valid: restart, restart when convenient, restart gracefully, restart now`},
		{"restart when", `action "restart when": unknown restart mode "when"; valid: restart, restart when convenient, restart gracefully, restart now`},
		{"shell", `action "shell": shell needs a command, e.g. shell /usr/local/bin/notify`},
		{"none please", `action "none please": none takes no arguments`},
		{"shell a\x00b", `action "shell a\x00b": contains a NUL byte`},
	}
	for _, tt := range tests {
		_, err := ParseAction(tt.in)
		if err == nil {
			t.Errorf("ParseAction(%q): no error, want %q", tt.in, tt.want)
			continue
		}
		if err.Error() != tt.want {
			t.Errorf("ParseAction(%q) error\n got: %s\nwant: %s", tt.in, err, tt.want)
		}
		var se *SyntaxError
		if !errors.As(err, &se) || se.What != "action" || se.Input != tt.in {
			t.Errorf("ParseAction(%q) error %#v is not a *SyntaxError for the action", tt.in, err)
		}
	}
}

func TestKindString(t *testing.T) {
	for k, want := range map[Kind]string{None: "none", Reload: "reload", AMICommand: "command", Restart: "restart", Shell: "shell", Kind(99): "Kind(99)"} {
		if got := k.String(); got != want {
			t.Errorf("Kind(%d).String() = %q, want %q", k, got, want)
		}
	}
}

func TestRestartRank(t *testing.T) {
	if !(restartRank(RestartNow) > restartRank(RestartGracefully) &&
		restartRank(RestartGracefully) > restartRank(RestartWhenConvenient) &&
		restartRank(RestartWhenConvenient) > restartRank("bogus")) {
		t.Fatal("restart ranks are not now > gracefully > when convenient > other")
	}
}

func TestModuleKey(t *testing.T) {
	for in, want := range map[string]string{"pbx_config.so": "pbx_config", "PBX_Config": "pbx_config", "manager": "manager", "res_pjsip.SO": "res_pjsip"} {
		if got := moduleKey(in); got != want {
			t.Errorf("moduleKey(%q) = %q, want %q", in, got, want)
		}
	}
}
