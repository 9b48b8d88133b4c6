package tmpl

import (
	"strings"
	"testing"
)

var data = Data{Node: Node{Name: "b", Site: "fra"}, Vars: map[string]string{"external_ip": "203.0.113.2"}}

func TestRender(t *testing.T) {
	for _, c := range []struct {
		name, text, want, err string
	}{
		{name: "vars and node", text: "external_media_address = {{ .Vars.external_ip }}\n; host {{ .Node.Name }} in {{ .Node.Site }}\n",
			want: "external_media_address = 203.0.113.2\n; host b in fra\n"},
		{name: "no actions", text: "[general]\n", want: "[general]\n"},
		{name: "if and index", text: `{{ if eq .Node.Site "fra" }}{{ index .Vars "external_ip" }}{{ end }}`, want: "203.0.113.2"},
		{name: "missing var", text: "[t]\nexternal_media_address = {{ .Vars.no_such_var }}\n",
			err: `pjsip.conf.tmpl:2:34: .Vars.no_such_var: "no_such_var" is not set in this host's [node.vars]`},
		{name: "missing var through index", text: `{{ index .Vars "nope" }}`, err: `pjsip.conf.tmpl:1:4: index .Vars "nope": "nope" is not set`},
		{name: "index of a list", text: `{{ index .Vars "external_ip" }}{{ index "ab" 1 }}`, want: "203.0.113.298"},
		{name: "wrong field", text: "{{ .Node.Nam }}", err: "pjsip.conf.tmpl:1:9: <.Node.Nam>: can't evaluate field Nam"},
		{name: "column counts characters", text: "; größe {{ .Vars.x }}", err: "pjsip.conf.tmpl:1:17: .Vars.x"},
		{name: "parse error", text: "a\n{{ .Vars.x }\n", err: `pjsip.conf.tmpl:2: unexpected "}" in operand`},
		{name: "unknown function", text: "{{ nope }}", err: `pjsip.conf.tmpl:1: function "nope" not defined`},
		{name: "endless recursion", text: `{{ define "a" }}{{ template "a" }}{{ end }}{{ template "a" }}`, err: "pjsip.conf.tmpl:1:"},
	} {
		out, err := Render("pjsip.conf.tmpl", []byte(c.text), data)
		if c.err != "" {
			if err == nil || !strings.HasPrefix(err.Error(), c.err[:strings.Index(c.err, ": ")+2]) || !strings.Contains(err.Error(), c.err) {
				t.Errorf("%s: Render = %q, %v; want error %q", c.name, out, err, c.err)
			}
			continue
		}
		if err != nil || string(out) != c.want {
			t.Errorf("%s: Render = %q, %v; want %q", c.name, out, err, c.want)
		}
	}
}

func TestRenderTooLarge(t *testing.T) {
	vars := map[string]string{"x": strings.Repeat("y", 1<<20)}
	text := "{{ range $i, $_ := .Vars }}" + strings.Repeat("{{ $.Vars.x }}", 70) + "{{ end }}"
	_, err := Render("big.tmpl", []byte(text), Data{Vars: vars})
	if err == nil || !strings.Contains(err.Error(), "big.tmpl: renders to more than 64 MiB") {
		t.Errorf("Render of 70 MiB = %v", err)
	}
}

func TestSet(t *testing.T) {
	s, err := Compile([]string{"*.tmpl", "sounds/x"})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		rel              string
		template, output bool
	}{
		{"pjsip.conf.tmpl", true, false},
		{"sub/dir/extensions.conf.tmpl", true, false},
		{"pjsip.conf", false, true},
		{".tmpl", false, true},
		{"sub/.tmpl", false, true},
		{"sounds/x", false, true},
		{"a.tmpl.tmpl", true, false},
	} {
		if got := s.IsTemplate(c.rel); got != c.template {
			t.Errorf("IsTemplate(%q) = %v", c.rel, got)
		}
		if got := s.IsOutput(c.rel); got != c.output {
			t.Errorf("IsOutput(%q) = %v", c.rel, got)
		}
	}
	if Output("a/pjsip.conf.tmpl") != "a/pjsip.conf" {
		t.Error("Output")
	}
	none, _ := Compile(nil)
	if !none.Empty() || none.IsTemplate("a.tmpl") {
		t.Error("an empty set matches")
	}
	if _, err := Compile([]string{"[a"}); err == nil {
		t.Error("a bad glob compiles")
	}
}
