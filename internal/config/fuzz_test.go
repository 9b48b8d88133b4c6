package config

import (
	"errors"
	"strings"
	"testing"
)

// FuzzParse: Parse and the locator never panic, and every error Parse
// returns is an ErrorList of well-formed *Error values.
func FuzzParse(f *testing.F) {
	f.Add([]byte(Example()))
	f.Add([]byte(locText))
	for _, tc := range errCases {
		f.Add([]byte(tc.text))
	}
	f.Add([]byte("\xEF\xBB\xBF[node]\r\nname = 'a'\r\n"))
	f.Add([]byte("a = \"\"\"\"\"\"\nb = '''x''''\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		l := locate(data)
		for p := range l.at {
			if line, col, ok := l.lookup(p); !ok || line < 1 || col < 1 {
				t.Fatalf("path %q at %d:%d", p, line, col)
			}
		}
		cfg, err := Parse("fuzz.toml", data)
		if err == nil {
			if cfg == nil || cfg.File != "fuzz.toml" {
				t.Fatalf("no error and config %+v", cfg)
			}
			return
		}
		var list ErrorList
		if !errors.As(err, &list) || len(list) == 0 {
			t.Fatalf("error %T %v is not a non-empty ErrorList", err, err)
		}
		for _, e := range list {
			if e.File != "fuzz.toml" || e.Line < 0 || e.Col < 0 || e.Col > 0 && e.Line == 0 || e.Msg == "" {
				t.Fatalf("bad error %#v", e)
			}
			if !strings.HasPrefix(e.Error(), "fuzz.toml:") {
				t.Fatalf("bad error text %q", e.Error())
			}
		}
	})
}
