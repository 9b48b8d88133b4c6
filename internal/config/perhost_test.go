package config

import (
	"errors"
	"reflect"
	"strings"
	"testing"
)

// TestPerHostKeys: [node] site and [node.vars], [[job]] templates and
// window load with their values.
func TestPerHostKeys(t *testing.T) {
	text := "[node]\nname = \"a\"\nlisten = \":7420\"\nsite = \"fra\"\n[node.vars]\nexternal_ip = \"203.0.113.5\"\nport = 5060\ntls = true\n" +
		"[[peer]]\nname = \"b\"\naddress = \"10.0.0.2:7420\"\nid = \"" + id2 + "\"\n" +
		job + "templates = [\"*.tmpl\"]\nwindow = [\"02:00-04:00\", \"22:00-23:00\"]\n" +
		"[[job]]\nname = \"two\"\npath = \"/etc/other\"\nsource = \"a\"\ntargets = [\"b\"]\nwindow = \"01:00-02:00\"\n"
	cfg, err := Parse("f.toml", []byte(text))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Node.Site != "fra" {
		t.Errorf("Site = %q", cfg.Node.Site)
	}
	if want := map[string]string{"external_ip": "203.0.113.5", "port": "5060", "tls": "true"}; !reflect.DeepEqual(cfg.Node.Vars, want) {
		t.Errorf("Vars = %v, want %v", cfg.Node.Vars, want)
	}
	if !reflect.DeepEqual(cfg.Jobs[0].Templates, []string{"*.tmpl"}) || !reflect.DeepEqual(cfg.Jobs[0].Windows, []string{"02:00-04:00", "22:00-23:00"}) {
		t.Errorf("job = %+v", cfg.Jobs[0])
	}
	if !reflect.DeepEqual(cfg.Jobs[1].Windows, []string{"01:00-02:00"}) {
		t.Errorf("one window as a string: %v", cfg.Jobs[1].Windows)
	}
}

// TestSiteKeys: [[peer]] site and relay load, a peer without a site is in
// this node's site, and a peer may have no address (it only dials in).
func TestSiteKeys(t *testing.T) {
	text := "[node]\nname = \"a\"\nlisten = \":7420\"\nsite = \"dc1\"\n" +
		"[[peer]]\nname = \"b\"\naddress = \"10.0.0.2:7420\"\nid = \"" + id2 + "\"\nsite = \"dc2\"\nrelay = true\n" +
		"[[peer]]\nname = \"c\"\nid = \"" + id3 + "\"\n"
	cfg, err := Parse("f.toml", []byte(text))
	if err != nil {
		t.Fatal(err)
	}
	b, c := cfg.Peers[0], cfg.Peers[1]
	if b.Site != "dc2" || !b.Relay || c.Site != "" || c.Relay || c.Address != "" {
		t.Errorf("peers = %+v", cfg.Peers)
	}
	for name, want := range map[string]string{"a": "dc1", "b": "dc2", "c": "dc1", "nobody": "dc1"} {
		if got := cfg.SiteOf(name); got != want {
			t.Errorf("SiteOf(%q) = %q, want %q", name, got, want)
		}
	}
}

func TestPerHostErrors(t *testing.T) {
	for _, tc := range []errCase{
		{"vars not a table", node + "vars = 1\n", []want{{"f.toml:4:1", "node.vars: expected a table"}}},
		{"var of a bad type", node + "[node.vars]\nips = [\"a\"]\n", []want{{"f.toml:5:1", "node.vars.ips: expected a string, number or boolean, got array"}}},
		{"var name unusable", node + "[node.vars]\n\"ext-ip\" = \"x\"\n", []want{{"f.toml:5:1", `cannot be used in a template as .Vars.ext-ip`}}},
		{"empty site", node + "site = \"\"\n", []want{{"f.toml:4:1", "node.site: must not be empty"}}},
		{"empty peer site", head + "site = \"\"\n", []want{{"f.toml:8:1", `peer "b": peer.site: must not be empty`}}},
		{"relay not a boolean", head + "relay = \"yes\"\n", []want{{"f.toml:8:1", `peer "b": peer.relay: expected true or false, got string`}}},
		{"empty peer address", node + "[[peer]]\nname = \"b\"\naddress = \"\"\nid = \"" + id2 + "\"\n", []want{{"f.toml:6:1", `peer "b": peer.address: must not be empty`}}},
		{"template glob", head + job + "templates = [\"*.conf\"]\n", []want{{"f.toml:13:", `pattern "*.conf" cannot match a template`}}},
		{"template on postgres", head + pg + "dsn = \"x\"\ntemplates = [\"*.tmpl\"]\n", []want{{"f.toml:15:1", "only files jobs take templates"}}},
		{"bad window", head + job + "window = [\"02:00-04:00\", \"4-5\"]\n", []want{{"f.toml:13:", `window "4-5": start: "4" is not HH:MM`}}},
		{"empty window", head + job + "window = \"02:00-02:00\"\n", []want{{"f.toml:13:", "must not be empty"}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse("f.toml", []byte(tc.text))
			var list ErrorList
			if !errors.As(err, &list) {
				t.Fatalf("error %v is not an ErrorList", err)
			}
			lines := strings.Split(err.Error(), "\n")
			if len(lines) != len(tc.want) {
				t.Fatalf("got %d errors, want %d:\n%v", len(lines), len(tc.want), err)
			}
			for i, w := range tc.want {
				if !strings.HasPrefix(lines[i], w.pos) || !strings.Contains(lines[i], w.msg) {
					t.Errorf("error %d: %q, want %q … %q", i, lines[i], w.pos, w.msg)
				}
			}
		})
	}
}
