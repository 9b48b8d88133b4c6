package hostmon

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"pbxsync/internal/tmpl"
)

// TestFilterExcludesRenderings: with templates, a file X is not part of
// the job while X.tmpl is a regular file in the tree, and a scan leaves
// it out; without X.tmpl, or without templates, X is an ordinary file.
func TestFilterExcludesRenderings(t *testing.T) {
	root := t.TempDir()
	for _, p := range []string{"pjsip.conf.tmpl", "pjsip.conf", "extensions.conf", "sub/rtp.conf.tmpl", "sub/rtp.conf"} {
		if err := os.MkdirAll(filepath.Join(root, filepath.Dir(p)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(root, p), []byte(p), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Mkdir(filepath.Join(root, "dir.tmpl"), 0o755); err != nil { // a directory is no template
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, "dir"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	base, err := NewFilter(nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	ts, err := tmpl.Compile([]string{"*.tmpl"})
	if err != nil {
		t.Fatal(err)
	}
	f := base.WithTemplates(root, ts)
	for p, want := range map[string]bool{
		"pjsip.conf.tmpl": true, "pjsip.conf": false, "extensions.conf": true,
		"sub/rtp.conf.tmpl": true, "sub/rtp.conf": false, "dir": true, "missing.conf": true,
	} {
		if got := f.Match(p, false); got != want {
			t.Errorf("Match(%q) = %v, want %v", p, got, want)
		}
		if !base.Match(p, false) {
			t.Errorf("the filter without templates does not match %q", p)
		}
	}
	got, err := Scan(context.Background(), root, f, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{"pjsip.conf", "sub/rtp.conf"} {
		if _, ok := got[p]; ok {
			t.Errorf("the scan took the rendering %s", p)
		}
	}
	if _, ok := got["pjsip.conf.tmpl"]; !ok {
		t.Error("the scan left out the template")
	}
	if base.WithTemplates(root, nil) != base {
		t.Error("WithTemplates(nil) is not the filter itself")
	}
}
