package rules

import (
	"fmt"
	"strings"
)

// Kind says what an Action does.
type Kind uint8

// Action kinds.
const (
	// None does nothing. A user rule with action "none" stops the built-in
	// action for the paths it matches.
	None Kind = iota
	// Reload reloads one Asterisk module or core subsystem through AMI
	// "Action: Reload" with "Module: <Module>".
	Reload
	// AMICommand runs a CLI command through AMI "Action: Command".
	AMICommand
	// Restart restarts Asterisk; Command holds the CLI command
	// (RestartWhenConvenient, RestartGracefully or RestartNow).
	Restart
	// Shell runs Command with the shell, in the job root.
	Shell
	// Service starts, stops or restarts the Asterisk service through
	// systemd (Command is "start", "stop" or "restart"): for what AMI
	// cannot do, e.g. when a change to manager.conf needs Asterisk
	// restarted and AMI is what broke.
	Service
)

// The CLI commands of the three restart variants, weakest first.
const (
	RestartWhenConvenient = "core restart when convenient" // waits until no calls are up; the default
	RestartGracefully     = "core restart gracefully"      // refuses new calls, restarts when the last one ends
	RestartNow            = "core restart now"             // hangs up every call
)

// String returns the verb of k as written in a rule's action.
func (k Kind) String() string {
	switch k {
	case None:
		return "none"
	case Reload:
		return "reload"
	case AMICommand:
		return "command"
	case Restart:
		return "restart"
	case Shell:
		return "shell"
	case Service:
		return "service"
	}
	return fmt.Sprintf("Kind(%d)", uint8(k))
}

// Action is one thing to do after a generation was applied.
type Action struct {
	Kind    Kind
	Module  string   // Reload: module or core subsystem, e.g. "pbx_config.so", "manager"
	Command string   // AMICommand: CLI command; Restart: one of the Restart* commands; Shell: shell command
	When    string   // condition on host state in canonical form (see ParseWhen); "always" or "" runs always
	Rule    string   // where it came from: "builtin: extensions.conf", "job.rule[2]"; merged actions list every origin, comma-separated
	Paths   []string // the changed paths (relative to the job root) that triggered it, sorted
}

// String returns the action in the form ParseAction reads, e.g.
// "reload pbx_config.so" or "restart when convenient". It leaves out When,
// Rule and Paths.
func (a Action) String() string {
	switch a.Kind {
	case None:
		return "none"
	case Reload:
		return "reload " + a.Module
	case AMICommand:
		return "command " + a.Command
	case Restart:
		return "restart " + strings.TrimPrefix(a.Command, "core restart ")
	case Shell:
		return "shell " + a.Command
	case Service:
		return "service " + a.Command
	}
	return a.Kind.String()
}

// validActions lists the forms ParseAction accepts; every error about an
// unknown or malformed action repeats it.
const validActions = "valid: reload MODULE, command CLI, restart [when convenient|gracefully|now], shell CMD, service start|stop|restart, none"

// maxModuleLen bounds a module name; Asterisk's own names are far shorter.
const maxModuleLen = 128

// SyntaxError reports a malformed action, check, condition or match glob.
type SyntaxError struct {
	What  string // "action", "check", "when" or "match"
	Input string // the text as written
	Msg   string // what is wrong, and the valid forms where that helps
}

func (e *SyntaxError) Error() string {
	return fmt.Sprintf("%s %q: %s", e.What, e.Input, e.Msg)
}

// ParseAction parses a rule's action string. The verb is case-insensitive.
//
//	reload MODULE                     Reload; MODULE like pbx_config.so, res_pjsip.so, manager
//	command CLI, ami-command CLI      AMICommand; CLI like "sip reload"
//	restart                           Restart, core restart when convenient
//	restart when convenient           the same
//	restart gracefully                Restart, core restart gracefully
//	restart now                       Restart, core restart now
//	shell CMD                         Shell; CMD runs with sh -c in the job root
//	service start|stop|restart        Service; the Asterisk unit through systemd
//	none                              None
//
// "command core restart …" is refused (a restart must be a restart action so
// that it runs last and at most once), and so is a CLI command holding a
// control character (it would break the AMI message). The returned Action has
// no When, Rule or Paths.
func ParseAction(s string) (Action, error) {
	bad := func(format string, args ...any) (Action, error) {
		return Action{}, &SyntaxError{What: "action", Input: s, Msg: fmt.Sprintf(format, args...)}
	}
	if strings.IndexByte(s, 0) >= 0 {
		return bad("contains a NUL byte")
	}
	t := strings.TrimSpace(s)
	if t == "" {
		return bad("empty; %s", validActions)
	}
	verb, rest := t, ""
	if i := strings.IndexFunc(t, isSpace); i >= 0 {
		verb, rest = t[:i], strings.TrimSpace(t[i:])
	}
	switch strings.ToLower(verb) {
	case "reload":
		args := strings.Fields(rest)
		switch {
		case len(args) == 0:
			return bad("reload needs a MODULE, e.g. reload pbx_config.so (to reload everything use: command core reload)")
		case len(args) > 1:
			return bad("reload takes one MODULE, got %d words; write one rule per module", len(args))
		}
		if err := checkModule(args[0]); err != "" {
			return bad("%s", err)
		}
		return Action{Kind: Reload, Module: args[0]}, nil
	case "command", "ami-command":
		if rest == "" {
			return bad("%s needs a CLI command, e.g. %s sip reload", verb, strings.ToLower(verb))
		}
		for _, r := range rest {
			if r < 0x20 || r == 0x7f {
				return bad("CLI command contains a control character (newline, tab …); AMI cannot carry it")
			}
		}
		cli := strings.Join(strings.Fields(rest), " ")
		if f := strings.Fields(strings.ToLower(cli)); len(f) >= 2 && f[0] == "core" && f[1] == "restart" {
			return bad("use the restart action (restart [when convenient|gracefully|now]) instead of a restart command, so that it runs last and at most once")
		}
		return Action{Kind: AMICommand, Command: cli}, nil
	case "restart":
		switch strings.ToLower(strings.Join(strings.Fields(rest), " ")) {
		case "", "when convenient":
			return Action{Kind: Restart, Command: RestartWhenConvenient}, nil
		case "gracefully":
			return Action{Kind: Restart, Command: RestartGracefully}, nil
		case "now":
			return Action{Kind: Restart, Command: RestartNow}, nil
		}
		return bad("unknown restart mode %q; valid: restart, restart when convenient, restart gracefully, restart now", rest)
	case "shell":
		if rest == "" {
			return bad("shell needs a command, e.g. shell /usr/local/bin/notify")
		}
		return Action{Kind: Shell, Command: rest}, nil
	case "service":
		switch strings.ToLower(rest) {
		case "start", "stop", "restart":
			return Action{Kind: Service, Command: strings.ToLower(rest)}, nil
		}
		return bad("service needs start, stop or restart, e.g. service restart")
	case "none":
		if rest != "" {
			return bad("none takes no arguments")
		}
		return Action{Kind: None}, nil
	}
	return bad("unknown verb %q; %s", verb, validActions)
}

// checkModule returns why m is not a plausible Asterisk module or subsystem
// name, or "" when it is. Only letters, digits, '_', '-' and '.' pass: the
// name goes into an AMI header.
func checkModule(m string) string {
	if len(m) > maxModuleLen {
		return fmt.Sprintf("module name longer than %d bytes", maxModuleLen)
	}
	if m[0] == '.' || m[0] == '-' {
		return fmt.Sprintf("bad module name %q: must start with a letter, digit or '_'", m)
	}
	for _, r := range m {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '_' || r == '-' || r == '.') {
			return fmt.Sprintf("bad module name %q: only letters, digits, '_', '-' and '.' are allowed", m)
		}
	}
	return ""
}

// moduleKey is the identity of a module for batching: Asterisk matches
// module names case-insensitively and with or without ".so".
func moduleKey(m string) string {
	m = strings.ToLower(m)
	return strings.TrimSuffix(m, ".so")
}

// restartRank orders the restart commands: now > gracefully > convenient.
func restartRank(cmd string) int {
	switch cmd {
	case RestartNow:
		return 3
	case RestartGracefully:
		return 2
	case RestartWhenConvenient:
		return 1
	}
	return 0
}

func isSpace(r rune) bool {
	return r == ' ' || r == '\t' || r == '\n' || r == '\r' || r == '\v' || r == '\f'
}
