package rules

import "testing"

func TestMatchGlob(t *testing.T) {
	tests := []struct {
		glob, path string
		want       bool
	}{
		{"extensions.conf", "extensions.conf", true},
		{"extensions.conf", "custom/extensions.conf", true}, // no '/': base name at any depth
		{"pjsip*.conf", "pjsip_trunks.conf", true},
		{"pjsip*.conf", "a/b/pjsip.endpoint.conf", true},
		{"pjsip*.conf", "sip.conf", false},
		{"*.wav", "sounds/en/hello.wav", true},
		{"sounds/*.wav", "sounds/hello.wav", true},
		{"sounds/*.wav", "sounds/en/hello.wav", false},
		{"sounds/**/*.wav", "sounds/hello.wav", true},
		{"sounds/**/*.wav", "sounds/en/custom/hello.wav", true},
		{"sounds/**", "sounds/en/hello.wav", true},
		{"sounds/**", "sounds", false},
		{"**/extensions.conf", "extensions.conf", true},
		{"**/extensions.conf", "a/b/extensions.conf", true},
		{"**/**/x", "a/x", true},
		{"a/**/b/**/c", "a/1/b/2/3/c", true},
		{"a/**/b/**/c", "a/1/2/3/c", false},
		{"custom/ext?.conf", "custom/ext1.conf", true},
		{"custom/[a-c].conf", "custom/d.conf", false},
	}
	for _, tt := range tests {
		if msg := checkGlob(tt.glob); msg != "" {
			t.Fatalf("checkGlob(%q) = %q", tt.glob, msg)
		}
		if got := matchGlob(tt.glob, tt.path); got != tt.want {
			t.Errorf("matchGlob(%q, %q) = %v, want %v", tt.glob, tt.path, got, tt.want)
		}
	}
}

func TestCheckGlob(t *testing.T) {
	tests := map[string]string{
		"":              "empty glob",
		"/etc/asterisk": "absolute; globs are relative to the job root",
		"a//b":          "empty path element (leading, trailing or double '/')",
		"a/":            "empty path element (leading, trailing or double '/')",
		"./x.conf":      `contains "."; globs are relative to the job root`,
		"../x.conf":     `contains ".."; globs are relative to the job root`,
		"[a-":           `bad pattern "[a-": syntax error in pattern`,
		"a\x00":         "contains a NUL byte",
	}
	for g, want := range tests {
		if got := checkGlob(g); got != want {
			t.Errorf("checkGlob(%q) = %q, want %q", g, got, want)
		}
	}
}
