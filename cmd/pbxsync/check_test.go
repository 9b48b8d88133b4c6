package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

func TestCheckCompilesRules(t *testing.T) {
	path := writeConfig(t, t.TempDir())
	good, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var out, errb bytes.Buffer
	if code := run([]string{"check", "--config", path}, &out, &errb); code != 0 {
		t.Fatalf("valid config: exit %d: %s", code, errb.String())
	}
	bad := filepath.Join(t.TempDir(), "bad.toml")
	text := string(good) + "\n  [[job.rule]]\n  match = \"*.conf\"\n  action = \"relaod pbx_config.so\"\n"
	if err := os.WriteFile(bad, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	line := strings.Count(string(good), "\n") + 2 // the [[job.rule]] header
	errb.Reset()
	code := run([]string{"check", "--config", bad}, &out, &errb)
	want := bad + ":" + strconv.Itoa(line) + `:3: job "conf": rule[0]: action "relaod pbx_config.so": unknown verb "relaod"`
	if code != 1 || !strings.HasPrefix(errb.String(), want) {
		t.Fatalf("bad rule: exit %d, stderr %q; want exit 1 and %q", code, errb.String(), want)
	}
}
