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
		{name: "range over vars", text: `{{ range $k, $v := .Vars }}{{ $k }}={{ $v }};{{ end }}`, want: "external_ip=203.0.113.2;"},
		{name: "range over $.Vars in with", text: `{{ with .Node }}{{ range $.Vars }}{{ . }}{{ end }}{{ end }}`, want: "203.0.113.2"},
		{name: "range over a number", text: "a\n {{ range 1000000000 }}{{ end }}", err: "pjsip.conf.tmpl:2:11: range over 1000000000: a template may range only over a field"},
		{name: "range over a variable", text: `{{ $n := 5 }}{{ if true }}{{ range $n }}x{{ end }}{{ end }}`, err: "pjsip.conf.tmpl:1:36: range over $n"},
		{name: "range in a define", text: `{{ define "x" }}{{ range 9 }}{{ end }}{{ end }}`, err: "pjsip.conf.tmpl:1:26: range over 9"},
		{name: "recursion", text: `{{ define "a" }}{{ template "a" }}{{ template "a" }}{{ end }}{{ template "a" }}`, err: `pjsip.conf.tmpl:1:29: {{ template "a" }} calls "a" again`},
		{name: "recursion through another", text: `{{ define "a" }}{{ template "b" }}{{ end }}{{ define "b" }}{{ template "a" }}{{ end }}`, err: `pjsip.conf.tmpl:1:`},
		{name: "calls that are no recursion", text: `{{ define "a" }}x{{ end }}{{ define "b" }}{{ template "a" }}{{ template "a" }}{{ end }}{{ template "b" }}`, want: "xx"},
		{name: "ranges nest 2 deep", text: `{{ range .Vars }}{{ range $.Vars }}{{ . }}{{ end }}{{ end }}`, want: "203.0.113.2"},
		{name: "ranges nest 3 deep", text: `{{ range .Vars }}{{ range $.Vars }}{{ range $.Vars }}{{ end }}{{ end }}{{ end }}`, err: "pjsip.conf.tmpl:1:45: range over $.Vars: ranges nest at most 2 deep"},
		{name: "parse error", text: "a\n{{ .Vars.x }\n", err: `pjsip.conf.tmpl:2: unexpected "}" in operand`},
		{name: "unknown function", text: "{{ nope }}", err: `pjsip.conf.tmpl:1: function "nope" not defined`},
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
	vars := map[string]string{"x": strings.Repeat("y", 1<<10)}
	text := strings.Repeat("{{ .Vars.x }}", 70)
	_, err := render("big.tmpl", []byte(text), Data{Vars: vars}, 64<<10)
	if err == nil || err.Error() != "big.tmpl: renders to more than the limit of 65536 bytes" {
		t.Errorf("render of 70 KiB with a limit of 64 KiB = %v", err)
	}
	if out, err := render("ok.tmpl", []byte(text), Data{Vars: vars}, 70<<10); err != nil || len(out) != 70<<10 {
		t.Errorf("render of 70 KiB with a limit of 70 KiB = %d bytes, %v", len(out), err)
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
