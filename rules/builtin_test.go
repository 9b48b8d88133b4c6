package rules

import (
	"path"
	"pbxsync/internal/glob"
	"strings"
	"testing"
)

// TestBuiltinFiles pins the action of every standard file.
func TestBuiltinFiles(t *testing.T) {
	tests := []struct{ file, want string }{
		{"extensions.conf", "reload pbx_config.so"},
		{"extensions_custom.conf", "reload pbx_config.so"},
		{"extensions_additional.conf", "reload pbx_config.so"},
		{"extensions.ael", "reload pbx_ael.so"},
		{"extensions.lua", "reload pbx_lua.so"},
		{"pjsip.conf", "reload res_pjsip.so"},
		{"pjsip_custom.conf", "reload res_pjsip.so"},
		{"pjsip.endpoint.conf", "reload res_pjsip.so"},
		{"pjsip_wizard.conf", "reload res_pjsip.so"},
		{"pjsip_notify.conf", "reload res_pjsip_notify.so"},
		{"sip.conf", "reload chan_sip.so"},
		{"sip_notify.conf", "reload chan_sip.so"},
		{"sip_custom.conf", "reload chan_sip.so"},
		{"iax.conf", "reload chan_iax2.so"},
		{"iax_custom.conf", "reload chan_iax2.so"},
		{"iaxprov.conf", "reload chan_iax2.so"},
		{"voicemail.conf", "reload app_voicemail.so"},
		{"queues.conf", "reload app_queue.so"},
		{"musiconhold.conf", "reload res_musiconhold.so"},
		{"features.conf", "reload features"},
		{"manager.conf", "reload manager"},
		{"manager_custom.conf", "reload manager"},
		{"logger.conf", "reload logger"},
		{"cdr.conf", "reload cdr"},
		{"cdr_custom.conf", "reload cdr_custom.so"},
		{"cdr_adaptive_odbc.conf", "reload cdr_adaptive_odbc.so"},
		{"cdr_pgsql.conf", "reload cdr_pgsql.so"},
		{"cel.conf", "reload cel"},
		{"cel_odbc.conf", "reload cel_odbc.so"},
		{"confbridge.conf", "reload app_confbridge.so"},
		{"rtp.conf", "reload res_rtp_asterisk.so"},
		{"http.conf", "reload http"},
		{"indications.conf", "reload indications"},
		{"res_pgsql.conf", "reload res_config_pgsql.so"},
		{"res_odbc.conf", "reload res_odbc.so"},
		{"res_parking.conf", "reload res_parking.so"},
		{"extconfig.conf", "reload extconfig"},
		{"udptl.conf", "reload udptl"},
		{"dnsmgr.conf", "reload dnsmgr"},
		{"enum.conf", "reload enum"},
		{"dsp.conf", "reload dsp"},
		{"acl.conf", "reload acl"},
		{"ari.conf", "reload res_ari.so"},
		{"followme.conf", "reload app_followme.so"},
		{"meetme.conf", "reload app_meetme.so"},
		{"agents.conf", "reload app_agent_pool.so"},
		{"say.conf", "reload app_playback.so"},
		{"asterisk.conf", "restart when convenient"},
		{"modules.conf", "restart when convenient"},
		{"sorcery.conf", "restart when convenient"},
		{"ccss.conf", "restart when convenient"},
		{"custom/extensions_foo.conf", "reload pbx_config.so"}, // base name decides
		// No action.
		{"sounds/en/custom/welcome.wav", ""},
		{"agi-bin/lookup.agi", ""},
		{"unknown.conf", ""},
		{"extensions.conf.bak", ""},
		{"cdr_.conf", ""}, // '*' must match something
	}
	table := Builtins()
	for _, tt := range tests {
		b, _, ok := builtinFor(table, tt.file)
		got := ""
		if ok {
			got = b.Action.String()
			if b.Action.Rule != "builtin: "+b.Pattern {
				t.Errorf("%s: Rule = %q", tt.file, b.Action.Rule)
			}
		}
		if got != tt.want {
			t.Errorf("%s: builtin action %q, want %q", tt.file, got, tt.want)
		}
	}
}

// TestBuiltinTable checks the table itself: valid patterns, no entry
// shadowed by an earlier one, actions that parse back, checks for every
// entry, and a fresh copy per call.
func TestBuiltinTable(t *testing.T) {
	table := Builtins()
	if len(table) < 40 {
		t.Fatalf("only %d builtins", len(table))
	}
	seen := map[string]bool{}
	for i, b := range table {
		if seen[b.Pattern] {
			t.Errorf("pattern %q twice", b.Pattern)
		}
		seen[b.Pattern] = true
		if _, err := glob.Compile(b.Pattern); err != nil || strings.Contains(b.Pattern, "/") {
			t.Errorf("pattern %q: %v (builtin patterns are base names)", b.Pattern, err)
		}
		// A file named like the pattern reaches this entry.
		sample := strings.ReplaceAll(b.Pattern, "*", "x")
		if _, pos, ok := builtinFor(table, sample); !ok || pos != i {
			t.Errorf("%q (sample of %q) goes to entry %d, want %d", sample, b.Pattern, pos, i)
		}
		a, err := ParseAction(b.Action.String())
		if err != nil && !strings.Contains(b.Action.Module, "*") {
			t.Errorf("%s: action %q does not parse: %v", b.Pattern, b.Action.String(), err)
		}
		if err == nil && (a.Kind != b.Action.Kind || a.Module != b.Action.Module || a.Command != b.Action.Command) {
			t.Errorf("%s: action %q parses to %+v", b.Pattern, b.Action.String(), a)
		}
		if b.Action.When != WhenAlways {
			t.Errorf("%s: When %q", b.Pattern, b.Action.When)
		}
		if len(b.Checks) == 0 || b.Checks[0].Kind != CheckAMI {
			t.Errorf("%s: checks %+v, want ami first", b.Pattern, b.Checks)
		}
		if b.Action.Kind == Reload && (len(b.Checks) != 2 || b.Checks[1].Kind != CheckLog) {
			t.Errorf("%s: a reload needs the ami and log checks, has %+v", b.Pattern, b.Checks)
		}
	}
	table[0].Pattern = "changed"
	table[1].Checks[0].Kind = CheckCommand
	if again := Builtins(); again[0].Pattern == "changed" || again[1].Checks[0].Kind != CheckAMI {
		t.Fatal("Builtins returns shared state")
	}
}

func TestBuiltinsMarkdown(t *testing.T) {
	md := BuiltinsMarkdown()
	lines := strings.Split(strings.TrimSuffix(md, "\n"), "\n")
	table := Builtins()
	if len(lines) != len(table)+2 {
		t.Fatalf("%d lines for %d builtins:\n%s", len(lines), len(table), md)
	}
	if lines[0] != "| file (base name) | action | checks | note |" || lines[1] != "| --- | --- | --- | --- |" {
		t.Errorf("header:\n%s\n%s", lines[0], lines[1])
	}
	for i, b := range table {
		row := lines[i+2]
		if !strings.HasPrefix(row, "| `"+b.Pattern+"` | `"+b.Action.String()+"` | `ami`") || strings.Count(row, " | ") != 3 {
			t.Errorf("row %d for %q: %s", i, b.Pattern, row)
		}
	}
	for _, want := range []string{
		"| `extensions*.conf` | `reload pbx_config.so` | `ami`, `log` |",
		"| `modules.conf` | `restart when convenient` | `ami` |",
		"| `cdr_*.conf` | `reload cdr_*.so` |",
		"| `manager.conf` | `reload manager` |",
	} {
		if !strings.Contains(md, want) {
			t.Errorf("markdown lacks %q", want)
		}
	}
}

func TestModuleRank(t *testing.T) {
	table := Builtins()
	// Each module ranks before the next one.
	order := []string{"logger", "manager", "cdr", "features", "res_odbc.so", "res_pjsip.so", "res_zzz.so",
		"chan_sip.so", "chan_iax2.so", "app_voicemail.so", "app_playback.so", "func_odbc.so", "my_thing.so",
		"cdr_custom.so", "cel_odbc.so", "pbx_config.so", "pbx_ael.so", "pbx_realtime.so"}
	less := func(a, b string) bool {
		at, ap := moduleRank(table, a)
		bt, bp := moduleRank(table, b)
		return cmpInts(at, bt, ap, bp) < 0 || cmpInts(at, bt, ap, bp) == 0 && moduleKey(a) < moduleKey(b)
	}
	for i := 0; i+1 < len(order); i++ {
		if !less(order[i], order[i+1]) {
			t.Errorf("%s does not rank before %s", order[i], order[i+1])
		}
	}
}

// TestMayMatch: the first-character filter never refuses a name that
// path.Match matches (for every builtin pattern, and patterns that start
// with each special character), and refuses the names of an initial sync
// that no builtin starts like.
func TestMayMatch(t *testing.T) {
	patterns := []string{"*.conf", "?ip.conf", "[ps]ip.conf", `\*x.conf`, "x]y", ""}
	names := []string{"", "x", "sip.conf", "pip.conf", "*x.conf", "x]y", "endpoint00001.conf", "extensions.conf"}
	for _, b := range Builtins() {
		patterns = append(patterns, b.Pattern)
		names = append(names, strings.ReplaceAll(b.Pattern, "*", "x"), strings.ReplaceAll(b.Pattern, "*", ""))
	}
	refused := 0
	for _, p := range patterns {
		for _, n := range names {
			match, _ := path.Match(p, n)
			may := mayMatch(p, n)
			if match && !may {
				t.Errorf("mayMatch(%q, %q) = false, but path.Match matches", p, n)
			}
			if !may && n == "endpoint00001.conf" {
				refused++
			}
		}
	}
	if refused < len(Builtins())/2 {
		t.Errorf("the filter refused endpoint00001.conf for %d patterns of %d; want most", refused, len(patterns))
	}
}
