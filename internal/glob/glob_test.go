package glob

import (
	"strings"
	"testing"
)

func TestMatch(t *testing.T) {
	cases := []struct {
		pattern, path string
		dir, want     bool
	}{
		{"*.conf", "extensions.conf", false, true},
		{"*.conf", "a/b/pjsip.conf", false, true},
		{"*.conf", "a/b/pjsip.conf.bak", false, false},
		{"/extensions.conf", "extensions.conf", false, true},
		{"/extensions.conf", "old/extensions.conf", false, false},
		{"sounds/**/*.wav", "sounds/en/digits/1.wav", false, true},
		{"sounds/**/*.wav", "sounds/1.wav", false, true},
		{"sounds/**/*.wav", "moh/1.wav", false, false},
		{"keys/", "keys", true, true},
		{"keys/", "keys", false, false},
		{"[!a]*.conf", "b.conf", false, true},
		{"[!a]*.conf", "a.conf", false, false},
		{`\*.conf`, "*.conf", false, true},
		{`\*.conf`, "x.conf", false, false},
		{"pjsip*.conf", "pjsip_trunks.conf", false, true},
	}
	for _, c := range cases {
		p, err := Compile(c.pattern)
		if err != nil {
			t.Fatalf("Compile(%q): %v", c.pattern, err)
		}
		if got := p.Match(c.path, c.dir); got != c.want {
			t.Errorf("%q matches %q (dir %v) = %v, want %v", c.pattern, c.path, c.dir, got, c.want)
		}
	}
}

func TestCompileRejects(t *testing.T) {
	for raw, why := range map[string]string{
		"":       "empty",
		"/":      "empty",
		"a//b":   "double",
		"a/../b": `".."`,
		"./x":    `"."`,
		"a**":    "whole path element",
		"[a-":    "syntax error",
		"a\x00":  "NUL",
	} {
		_, err := Compile(raw)
		if err == nil || !strings.Contains(err.Error(), why) || !strings.Contains(err.Error(), "bad pattern") {
			t.Errorf("Compile(%q) = %v; want an error about %s", raw, err, why)
		}
	}
}

func TestCouldMatchBelow(t *testing.T) {
	p, _ := Compile("sounds/custom/*.wav")
	if !p.CouldMatchBelow(Split("sounds")) || p.CouldMatchBelow(Split("moh")) {
		t.Fatal("CouldMatchBelow wrong for an anchored pattern")
	}
	if q, _ := Compile("*.wav"); !q.CouldMatchBelow(Split("anything")) {
		t.Fatal("a base-name pattern can match below any directory")
	}
}
