package main

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestRenderCommand: pbxsync render prints this node's rendering from
// the config alone; a missing variable exits 1 with FILE:LINE:COL; a
// peer's values without a running agent, an unknown node and a job
// without templates are refused with a message that says why.
func TestRenderCommand(t *testing.T) {
	dir := t.TempDir()
	tree := filepath.Join(dir, "tree")
	if err := os.Mkdir(tree, 0o755); err != nil {
		t.Fatal(err)
	}
	cfg := filepath.Join(dir, "pbxsync.toml")
	text := fmt.Sprintf("[node]\nname = \"a\"\nlisten = \"127.0.0.1:7420\"\ndata_dir = %q\nsite = \"fra\"\n[node.vars]\nexternal_ip = \"203.0.113.1\"\n\n"+
		"[[peer]]\nname = \"b\"\naddress = \"127.0.0.1:7421\"\nid = \"OWDXXNA5HE5V7R-OCFLTTA5TMN3IH-AB2BRRMSLLCTPE-2P6EVMVXOZJFA5\"\n\n"+
		"[[job]]\nname = \"conf\"\npath = %q\nsource = \"a\"\ntargets = [\"b\"]\ntemplates = [\"*.tmpl\"]\n\n"+
		"[[job]]\nname = \"plain\"\npath = %q\nsource = \"a\"\ntargets = [\"b\"]\n",
		filepath.Join(dir, "data"), tree, filepath.Join(dir, "other"))
	if err := os.WriteFile(cfg, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	good := filepath.Join(tree, "pjsip.conf.tmpl")
	bad := filepath.Join(dir, "draft.tmpl")
	os.WriteFile(good, []byte("ip = {{ .Vars.external_ip }} ; {{ .Node.Name }}@{{ .Node.Site }}\n"), 0o644)
	os.WriteFile(bad, []byte("x\n  {{ .Vars.nope }}\n"), 0o644)
	for _, c := range []struct {
		args         []string
		code         int
		stdout, errs string
	}{
		{[]string{"--config", cfg, "--job", "conf", good}, 0, "ip = 203.0.113.1 ; a@fra\n", ""},
		{[]string{"--config", cfg, "--job", "conf", good, "--node", "a"}, 0, "ip = 203.0.113.1 ; a@fra\n", ""},
		{[]string{"--config", cfg, "--job", "conf", bad}, 1, "", bad + ":2:11: .Vars.nope: \"nope\" is not set"},
		{[]string{"--config", cfg, "--job", "conf", "--node", "b", good}, 1, "", "the [node.vars] of b are in b's own configuration"},
		{[]string{"--config", cfg, "--job", "conf", "--node", "zz", good}, 1, "", `"zz" is neither this node (a) nor a [[peer]]`},
		{[]string{"--config", cfg, "--job", "plain", good}, 1, "", `job "plain" has no templates`},
		{[]string{"--config", cfg, "--job", "conf"}, 2, "", "want one template file, got 0"},
		{[]string{"--config", cfg, "--job", "conf", good, bad}, 2, "", "want one template file, got 2"},
	} {
		var out, errb bytes.Buffer
		code := run(append([]string{"render"}, c.args...), &out, &errb)
		if code != c.code || out.String() != c.stdout || !strings.Contains(errb.String(), c.errs) {
			t.Errorf("render %q: exit %d, stdout %q, stderr %q; want exit %d, stdout %q, stderr with %q", c.args, code, out.String(), errb.String(), c.code, c.stdout, c.errs)
		}
	}
}
