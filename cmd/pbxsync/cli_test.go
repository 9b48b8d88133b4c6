package main

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"pbxsync/internal/testwait"
)

func TestVersionFlags(t *testing.T) {
	for _, arg := range []string{"version", "--version", "-version", "-v", "-V"} {
		var out, errb bytes.Buffer
		if code := run([]string{arg}, &out, &errb); code != 0 || out.String() != "pbxsync "+version+"\n" {
			t.Errorf("pbxsync %s: exit %d, stdout %q, stderr %q; want the version", arg, code, out.String(), errb.String())
		}
	}
}

// TestIDSaysWhenItCreates: `pbxsync id` says on stderr that it created an
// identity (and where), only the first time; the ID on stdout stays the
// same. A relative --data-dir is refused.
func TestIDSaysWhenItCreates(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	var out1, err1, out2, err2 bytes.Buffer
	if code := run([]string{"id", "--data-dir", dir}, &out1, &err1); code != 0 {
		t.Fatalf("exit %d: %s", code, err1.String())
	}
	if want := "pbxsync id: created a new identity in " + dir + "\n"; err1.String() != want {
		t.Errorf("first run: stderr %q, want %q", err1.String(), want)
	}
	if code := run([]string{"id", "--data-dir", dir}, &out2, &err2); code != 0 {
		t.Fatalf("exit %d: %s", code, err2.String())
	}
	if err2.Len() != 0 || out2.String() != out1.String() || len(strings.TrimSpace(out1.String())) != 56+3 {
		t.Errorf("second run: stdout %q (first %q), stderr %q; want the same ID and nothing on stderr", out2.String(), out1.String(), err2.String())
	}

	var out, errb bytes.Buffer
	code := run([]string{"id", "--data-dir", "var/lib/pbxsync"}, &out, &errb)
	if code != 2 || out.Len() != 0 || !strings.Contains(errb.String(), `--data-dir "var/lib/pbxsync" is a relative path`) {
		t.Errorf("relative --data-dir: exit %d, stdout %q, stderr %q; want exit 2 and a clear error", code, out.String(), errb.String())
	}
}

// TestDemoNamesTheBinaryAsRun: the commands the demo suggests use the path
// the binary was run as (make demo runs ./bin/pbxsync).
func TestDemoNamesTheBinaryAsRun(t *testing.T) {
	for arg0, want := range map[string]string{"./bin/pbxsync": "./bin/pbxsync", "/usr/local/bin/pbxsync": "/usr/local/bin/pbxsync", "pbxsync": "pbxsync"} {
		if got := commandName(arg0); got != want {
			t.Errorf("commandName(%q) = %q, want %q", arg0, got, want)
		}
	}
	defer func(old string) { self = old }(self)
	self = "./bin/pbxsync"
	ctx, cancel := context.WithCancel(context.Background())
	out := &syncBuffer{}
	done := make(chan int, 1)
	go func() { done <- cmdDemo(ctx, []string{"--dir", t.TempDir()}, out, out) }()
	testwait.Eventually(t, "the demo's hints", func() error {
		if !strings.Contains(out.String(), "Ctrl-C stops the demo") {
			return errors.New("not yet")
		}
		return nil
	})
	// the source's dashboard answers at the address the demo prints
	m := regexp.MustCompile(`Dashboard of pbx-a: (http://127\.0\.0\.1:\d+/)`).FindStringSubmatch(out.String())
	if m == nil {
		t.Errorf("demo output:\n%s\nwant the dashboard's address", out.String())
	} else if resp, err := http.Get(m[1] + "api/v1/status"); err != nil || resp.StatusCode != 200 {
		t.Errorf("the demo's dashboard: %v %v", resp, err)
	} else {
		resp.Body.Close()
	}
	cancel()
	testwait.Chan(t, "the demo to stop", done)
	if s := out.String(); !strings.Contains(s, "Try: ./bin/pbxsync status --config ") || !strings.Contains(s, "     ./bin/pbxsync history --config ") || !strings.Contains(s, "./bin/pbxsync token --config ") {
		t.Errorf("demo output:\n%s\nwant the commands with ./bin/pbxsync", s)
	}
}
