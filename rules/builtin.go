package rules

import (
	"fmt"
	"path"
	"strings"
)

// Builtin is one entry of the built-in rule set: changed files whose base
// name matches Pattern trigger Action and add Checks.
type Builtin struct {
	Pattern string // glob on the file's base name, e.g. "pjsip*.conf"
	// Action to run. For Reload, a '*' in Module stands for the text that
	// the '*' of Pattern matched: "cdr_*.conf" with Module "cdr_*.so" turns
	// cdr_custom.conf into a reload of cdr_custom.so.
	Action Action
	Checks []Check // checks added when the action is planned
	Note   string  // why, for the README
}

// Builtins returns the built-in rule set, in match order: for each changed
// file the first entry whose Pattern matches its base name applies. Each
// call returns a fresh copy.
//
// Sources for the module names: Asterisk's ModuleLoad AMI documentation
// (Asterisk 18–22) lists the core subsystems that "Action: Reload" accepts
// without ".so": cdr, dnsmgr, extconfig, enum, acl, manager, http, logger,
// features, dsp, udptl, indications, cel, plc (the reload_classes table of
// main/loader.c in Asterisk 13, builtin modules of the same names since
// 16). The others were read from the module sources: say.conf is read by
// app_playback's reload; res_pjsip_config_wizard has no reload of its own
// and re-reads pjsip_wizard.conf when res_pjsip's objects reload;
// res_pjsip_notify reloads pjsip_notify.conf itself. ccss.conf is read only
// when Asterisk starts (ccss is not a reload subsystem), so it needs a
// restart like asterisk.conf, modules.conf and sorcery.conf.
func Builtins() []Builtin {
	reload := func(pattern, module, note string) Builtin {
		origin := builtinOrigin(pattern)
		return Builtin{
			Pattern: pattern,
			Action:  Action{Kind: Reload, Module: module, When: WhenAlways, Rule: origin},
			Checks:  []Check{{Kind: CheckAMI, Rule: origin}, {Kind: CheckLog, Rule: origin}},
			Note:    note,
		}
	}
	restart := func(pattern, note string) Builtin {
		origin := builtinOrigin(pattern)
		return Builtin{
			Pattern: pattern,
			Action:  Action{Kind: Restart, Command: RestartWhenConvenient, When: WhenAlways, Rule: origin},
			Checks:  []Check{{Kind: CheckAMI, Rule: origin}},
			Note:    note,
		}
	}
	const core = "core subsystem, reloaded by name"
	return []Builtin{
		// Start-up only: restart.
		restart("asterisk.conf", "read only at start-up"),
		restart("modules.conf", "which modules load is decided at start-up"),
		restart("sorcery.conf", "object wizards are mapped at start-up"),
		restart("ccss.conf", "read only at start-up; ccss is not a reload subsystem"),

		// Core subsystems (no .so).
		reload("logger.conf", "logger", core),
		reload("logger_*.conf", "logger", "included from logger.conf"),
		reload("acl.conf", "acl", core+"; named ACLs"),
		reload("extconfig.conf", "extconfig", core+"; realtime mappings"),
		reload("dnsmgr.conf", "dnsmgr", core),
		reload("enum.conf", "enum", core),
		reload("dsp.conf", "dsp", core),
		reload("udptl.conf", "udptl", core),
		reload("indications.conf", "indications", core),
		reload("http.conf", "http", core+"; built-in HTTP server"),
		reload("manager.conf", "manager", core+"; AMI users and settings"),
		reload("manager_*.conf", "manager", "included from manager.conf"),
		reload("cdr.conf", "cdr", core+"; CDR engine"),
		reload("cel.conf", "cel", core+"; CEL engine"),
		reload("features.conf", "features", core+" (Asterisk 12+: features are in the core)"),
		reload("features_*.conf", "features", "included from features.conf"),

		// Resources.
		reload("res_odbc.conf", "res_odbc.so", ""),
		reload("res_pgsql.conf", "res_config_pgsql.so", "res_config_pgsql reads res_pgsql.conf (there is no res_pgsql.so)"),
		reload("rtp.conf", "res_rtp_asterisk.so", ""),
		reload("musiconhold.conf", "res_musiconhold.so", ""),
		reload("musiconhold_*.conf", "res_musiconhold.so", "included from musiconhold.conf"),
		reload("res_parking.conf", "res_parking.so", "call parking (Asterisk 12+)"),
		reload("ari.conf", "res_ari.so", ""),
		reload("pjsip_notify*.conf", "res_pjsip_notify.so", "res_pjsip_notify reloads its own file"),
		reload("pjsip_wizard*.conf", "res_pjsip.so", "res_pjsip_config_wizard has no reload; it re-reads pjsip_wizard.conf when res_pjsip reloads"),
		reload("pjsip*.conf", "res_pjsip.so", "pjsip.conf and the files it includes (pjsip_custom.conf, pjsip.endpoint.conf …)"),

		// Channel drivers.
		reload("sip.conf", "chan_sip.so", ""),
		reload("sip_*.conf", "chan_sip.so", "included from sip.conf; sip_notify.conf is read by chan_sip"),
		reload("iax.conf", "chan_iax2.so", ""),
		reload("iax_*.conf", "chan_iax2.so", "included from iax.conf"),
		reload("iaxprov.conf", "chan_iax2.so", "IAX provisioning, reloaded with chan_iax2"),

		// Applications.
		reload("voicemail.conf", "app_voicemail.so", ""),
		reload("queues.conf", "app_queue.so", ""),
		reload("queues_*.conf", "app_queue.so", "included from queues.conf"),
		reload("confbridge.conf", "app_confbridge.so", ""),
		reload("confbridge_*.conf", "app_confbridge.so", "included from confbridge.conf"),
		reload("agents.conf", "app_agent_pool.so", "Asterisk 12+ agents"),
		reload("followme.conf", "app_followme.so", ""),
		reload("meetme.conf", "app_meetme.so", ""),
		reload("say.conf", "app_playback.so", "app_playback's reload reads say.conf"),

		// CDR and CEL back ends, after the engines.
		reload("cdr_*.conf", "cdr_*.so", "the back end named like the file (cdr_custom.conf: cdr_custom.so); a file included from cdr.conf needs a user rule"),
		reload("cel_*.conf", "cel_*.so", "the back end named like the file (cel_odbc.conf: cel_odbc.so)"),

		// Dialplan last: it refers to everything above.
		reload("extensions*.conf", "pbx_config.so", "extensions.conf and the files it includes (extensions_custom.conf …); Reload answers Error on a broken dialplan"),
		reload("extensions*.ael", "pbx_ael.so", ""),
		reload("extensions*.lua", "pbx_lua.so", ""),
	}
}

func builtinOrigin(pattern string) string { return "builtin: " + pattern }

// builtinFor returns the first builtin of table matching the base name of
// p, with the module of a '*' entry filled in, and its position.
func builtinFor(table []Builtin, p string) (Builtin, int, bool) {
	base := path.Base(p)
	for i, b := range table {
		if !mayMatch(b.Pattern, base) {
			continue
		}
		if ok, _ := path.Match(b.Pattern, base); !ok {
			continue
		}
		if b.Action.Kind == Reload && strings.Contains(b.Action.Module, "*") {
			star, ok := starText(b.Pattern, base)
			if !ok {
				continue
			}
			m := strings.Replace(b.Action.Module, "*", star, 1)
			if checkModule(m) != "" {
				continue
			}
			b.Action.Module = m
		}
		return b, i, true
	}
	return Builtin{}, 0, false
}

// mayMatch reports false when pattern cannot match name because its first
// character is a literal one that name does not start with: most base
// names match none of the table, and the plan of an initial sync of 100k
// files spent 0.19 s in path.Match finding that out.
func mayMatch(pattern, name string) bool {
	if pattern == "" {
		return name == ""
	}
	switch c := pattern[0]; c {
	case '*', '?', '[', '\\':
		return true
	default:
		return name != "" && name[0] == c
	}
}

// starText returns what the single '*' of pattern matched in name.
func starText(pattern, name string) (string, bool) {
	i := strings.IndexByte(pattern, '*')
	if i < 0 || strings.Count(pattern, "*") != 1 {
		return "", false
	}
	pre, suf := pattern[:i], pattern[i+1:]
	if len(name) < len(pre)+len(suf)+1 || !strings.HasPrefix(name, pre) || !strings.HasSuffix(name, suf) {
		return "", false
	}
	return name[len(pre) : len(name)-len(suf)], true
}

// BuiltinsMarkdown renders the built-in rule set as a Markdown table (file
// pattern, action, checks, note), for the README.
func BuiltinsMarkdown() string {
	var b strings.Builder
	b.WriteString("| file (base name) | action | checks | note |\n")
	b.WriteString("| --- | --- | --- | --- |\n")
	for _, e := range Builtins() {
		checks := make([]string, len(e.Checks))
		for i, c := range e.Checks {
			checks[i] = "`" + c.String() + "`"
		}
		fmt.Fprintf(&b, "| `%s` | `%s` | %s | %s |\n",
			e.Pattern, e.Action.String(), strings.Join(checks, ", "), mdEscape(e.Note))
	}
	return b.String()
}

func mdEscape(s string) string { return strings.ReplaceAll(s, "|", `\|`) }

// moduleRank orders reloads: by tier (core subsystems, res_, chan_, other
// modules such as app_, cdr_/cel_ back ends, pbx_ dialplan), then by the
// module's first position in the builtin table, then by name. Dependencies
// come first: the logger and ACLs before their users, database connections
// before realtime users, endpoints before the dialplan that dials them, and
// the dialplan last because it refers to everything else.
func moduleRank(table []Builtin, module string) (tier, pos int) {
	key := moduleKey(module)
	switch {
	case strings.HasPrefix(key, "pbx_"):
		tier = 5
	case strings.HasPrefix(key, "cdr_"), strings.HasPrefix(key, "cel_"):
		tier = 4
	case strings.HasPrefix(key, "chan_"):
		tier = 2
	case strings.HasPrefix(key, "res_"):
		tier = 1
	case !strings.HasSuffix(strings.ToLower(module), ".so") && !strings.Contains(key, "_"):
		tier = 0 // core subsystem: "manager", "logger" …
	default:
		tier = 3
	}
	pos = len(table)
	for i, b := range table {
		if b.Action.Kind == Reload && moduleKey(b.Action.Module) == key {
			pos = i
			break
		}
	}
	return tier, pos
}
