package config

import (
	"strings"
	"testing"
)

func TestHasNode(t *testing.T) {
	for _, tc := range []struct {
		name string
		src  string
		want bool
	}{
		{"empty", "", false},
		{"comments only", "# [node]\n#name = \"a\"\n", false},
		{"peers but no node", "[[peer]]\nname = \"b\"\n", false},
		{"node", "[node]\nname = \"a\"\n", true},
		{"empty node table", "[node]\n", true},
		{"dotted node key", "node.name = \"a\"\n", true},
		{"invalid TOML: the agent reports it", "[node\nname = \n", true},
		{"invalid TOML without node", "name = = 1\n", true},
	} {
		if got := HasNode([]byte(tc.src)); got != tc.want {
			t.Errorf("%s: HasNode(%q) = %v, want %v", tc.name, tc.src, got, tc.want)
		}
	}
}

// TestTemplate: the packaged file has no [node] (the agent stays off), is
// valid TOML, and removing the one "#" put in front of each setting gives
// back the example, which is a valid configuration.
func TestTemplate(t *testing.T) {
	tmpl := Template()
	if HasNode([]byte(tmpl)) {
		t.Fatal("Template has a [node] table")
	}
	if !strings.HasPrefix(tmpl, templateHeader) {
		t.Fatal("Template does not start with its header")
	}
	body := strings.TrimPrefix(tmpl, templateHeader)
	example := strings.Split(Example(), "\n")
	lines := strings.Split(body, "\n")
	if len(lines) != len(example) {
		t.Fatalf("template body has %d lines, example %d", len(lines), len(example))
	}
	var settings int
	for i, l := range lines {
		e := example[i]
		if tr := strings.TrimSpace(e); tr == "" || strings.HasPrefix(tr, "#") {
			if l != e {
				t.Errorf("line %d: comment %q became %q", i+1, e, l)
			}
			continue
		}
		settings++
		if l != "#"+e {
			t.Errorf("line %d: setting %q became %q, want it commented out", i+1, e, l)
		}
	}
	if settings < 20 {
		t.Errorf("only %d settings commented out; the example has more", settings)
	}
	if _, err := Parse("example.toml", []byte(Example())); err != nil {
		t.Errorf("the example does not parse: %v", err)
	}
}
