package glob

import (
	"path"
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

// TestGlobElemFastPath: the literal and one-star shapes globElem matches
// without path.Match give path.Match's answer.
func TestGlobElemFastPath(t *testing.T) {
	globs := []string{"", "4913", "*", "*~", "*.swp", ".pbxsync*", "astdb.sqlite3*", ".#*", "a*b", "ab*ab",
		"*.conf", "x", "a?c", "[ab]*", `\*x`, "a*b*c", "**"}
	names := []string{"", "4913", "49130", "a", "ab", "abab", "aab", "x.swp", ".swp", "swp", "a~", "~", ".pbxsync",
		".pbxsync-tmp", "astdb.sqlite3-journal", "astdb.sqlite", ".#lock", "x.conf", "a/b", "a/.conf", "ab/ab", "*x", "abc", "aXbYc"}
	for _, g := range globs {
		for _, n := range names {
			want, err := path.Match(g, n)
			if err != nil {
				want = false
			}
			if got := globElem(g, n); got != want {
				t.Errorf("globElem(%q, %q) = %v, path.Match says %v", g, n, got, want)
			}
		}
	}
}

// BenchmarkFilterElem: the built-in exclude patterns against one name.
func BenchmarkFilterElem(b *testing.B) {
	for b.Loop() {
		for _, g := range []string{"astdb.sqlite3*", ".pbxsync*", "*.swp", "*.swo", "*.swx", "*~", ".#*", "4913"} {
			globElem(g, "endpoint0500.conf")
		}
	}
}
