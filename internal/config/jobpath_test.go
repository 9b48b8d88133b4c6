package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestJobPathRefusesDataDir: a files job whose path is /, holds data_dir,
// lies inside it (also through a symbolic link) or holds the config file is
// refused at the position of its path key; a sibling tree is accepted.
func TestJobPathRefusesDataDir(t *testing.T) {
	tmp := t.TempDir()
	data := filepath.Join(tmp, "var", "pbxsync")
	etc := filepath.Join(tmp, "etc", "asterisk")
	for _, d := range []string{data, etc, filepath.Join(tmp, "conf")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	// link -> data_dir: a job path through it lies inside data_dir.
	if err := os.Symlink(data, filepath.Join(tmp, "link")); err != nil {
		t.Fatal(err)
	}
	// alias -> tmp/var: a job path through it holds data_dir.
	if err := os.Symlink(filepath.Join(tmp, "var"), filepath.Join(tmp, "alias")); err != nil {
		t.Fatal(err)
	}
	cfgFile := filepath.Join(tmp, "conf", "pbxsync.toml")
	doc := func(path string) string {
		return "[node]\nname = \"a\"\nlisten = \":7420\"\ndata_dir = \"" + data + "\"\n" +
			"[[peer]]\nname = \"b\"\naddress = \"10.0.0.2:7420\"\nid = \"" + id2 + "\"\n" +
			"[[job]]\nname = \"conf\"\npath = \"" + path + "\"\nsource = \"b\"\ntargets = [\"a\"]\n"
	}
	for _, tc := range []struct {
		path, msg string // msg "" = accepted
	}{
		{"/", "is the root directory"},
		{tmp, "holds data_dir"},
		{filepath.Join(tmp, "var"), "holds data_dir"},
		{filepath.Join(tmp, "alias"), "holds data_dir"},
		{data, "holds data_dir"},
		{filepath.Join(data, "jobs", "conf"), "lies inside data_dir"},
		{filepath.Join(tmp, "link", "sub"), "lies inside data_dir"},
		{filepath.Join(tmp, "conf"), "holds this configuration file"},
		{etc, ""},
		{filepath.Join(tmp, "var", "pbxsync2"), ""}, // a sibling with a common prefix
	} {
		if err := os.WriteFile(cfgFile, []byte(doc(tc.path)), 0o644); err != nil {
			t.Fatal(err)
		}
		_, err := Load(cfgFile)
		if tc.msg == "" {
			if err != nil {
				t.Errorf("path %s: %v", tc.path, err)
			}
			continue
		}
		if err == nil {
			t.Errorf("path %s accepted, want %q", tc.path, tc.msg)
			continue
		}
		want := cfgFile + ":11:1: job \"conf\": job.path: "
		if !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), tc.msg) {
			t.Errorf("path %s: got %q, want %q … %q", tc.path, err, want, tc.msg)
		}
	}
}
