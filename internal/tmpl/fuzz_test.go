package tmpl

import (
	"strings"
	"testing"
)

// FuzzRender: any template text (it comes from a peer, through the tree)
// renders or fails with an error that names the file, never panics, and
// never renders past the bound.
func FuzzRender(f *testing.F) {
	for _, s := range []string{
		"external_media_address = {{ .Vars.external_ip }}\n",
		"{{ .Node.Name }}@{{ .Node.Site }}",
		`{{ index .Vars "x" }}{{ range $k, $v := .Vars }}{{ $k }}={{ $v }}{{ end }}`,
		"{{ if",
		"{{ .Vars.nope }}",
		`{{ printf "%0999999d" 1 }}`,
	} {
		f.Add(s)
	}
	data := Data{Node: Node{Name: "b", Site: "ber"}, Vars: map[string]string{"external_ip": "203.0.113.2", "x": "y"}}
	f.Fuzz(func(t *testing.T, text string) {
		out, err := render("f.tmpl", []byte(text), data, 1<<20)
		if err != nil {
			if !strings.HasPrefix(err.Error(), "f.tmpl:") {
				t.Fatalf("error %q does not name the file", err)
			}
			return
		}
		if len(out) > 1<<20 {
			t.Fatalf("rendered %d bytes past the bound", len(out))
		}
	})
}
