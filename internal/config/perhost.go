package config

import (
	"regexp"
	"strconv"
	"strings"

	"pbxsync/internal/window"
)

// varName is what a [node.vars] key must look like to be reachable as
// .Vars.KEY in a template.
var varName = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// vars checks [node.vars]: any key a template can name (.Vars.KEY), each
// a string, integer, float or boolean (kept as its text).
func (c *checker) vars(s *section) map[string]string {
	out := map[string]string{}
	for k := range s.m {
		raw, _ := s.get(k)
		if !varName.MatchString(k) {
			s.errf(k, "%q cannot be used in a template as .Vars.%s: use letters, digits and '_', not starting with a digit", k, k)
			continue
		}
		switch v := raw.(type) {
		case string:
			out[k] = v
		case int64:
			out[k] = strconv.FormatInt(v, 10)
		case float64:
			out[k] = strconv.FormatFloat(v, 'g', -1, 64)
		case bool:
			out[k] = strconv.FormatBool(v)
		default:
			s.errf(k, "expected a string, number or boolean, got %s", typeName(raw))
		}
	}
	s.finish()
	return out
}

// templates checks [[job]] templates: globs, each of which must be able to
// name a file ending in ".tmpl" (what renders to the name without it).
func (c *checker) templates(s *section, globs []string) {
	for n, g := range globs {
		at := joinIndex(s.kpath("templates"), n)
		if err := checkGlob(g); err != nil {
			s.errAt(at, "templates", err, "%v", err)
			continue
		}
		if !strings.HasSuffix(g, ".tmpl") && !strings.HasSuffix(g, "*") && !strings.HasSuffix(g, "**") {
			s.errAt(at, "templates", nil, "pattern %q cannot match a template: templates are files named X.tmpl (e.g. \"*.tmpl\", \"pjsip.conf.tmpl\")", g)
		}
	}
}

// windows checks [[job]] window: "HH:MM-HH:MM" each (see internal/window).
func (c *checker) windows(s *section, list []string) {
	for n, w := range list {
		if _, err := window.Parse(w); err != nil {
			s.errAt(joinIndex(s.kpath("window"), n), "window", err, "%v", err)
		}
	}
}
