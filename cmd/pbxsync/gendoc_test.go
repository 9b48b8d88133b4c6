package main

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"pbxsync/internal/config"
)

// TestEveryCommandHasHelp: every command of the usage list answers --help
// with exit 0 and, but for version, hands its flag set to gendoc.
func TestEveryCommandHasHelp(t *testing.T) {
	_, cmds, _, err := parseUsage(usage)
	if err != nil {
		t.Fatal(err)
	}
	if len(cmds) < 10 {
		t.Fatalf("parseUsage found %d commands: %+v", len(cmds), cmds)
	}
	for _, c := range cmds {
		sink := &helpSink{Writer: &bytes.Buffer{}}
		if code := run([]string{"help", c.Name}, &bytes.Buffer{}, sink); code != 0 {
			t.Errorf("pbxsync help %s: exit %d", c.Name, code)
		}
		if c.Name != "version" && (sink.fs == nil || sink.description == "") {
			t.Errorf("pbxsync help %s: no flag set or description reached gendoc", c.Name)
		}
	}
}

func TestParseUsage(t *testing.T) {
	intro, cmds, outro, err := parseUsage("Intro.\n\nUsage:\n  x <command>\n\nCommands:\n  run   run it\n  roll  roll it\n        back\n\nOutro.\n")
	if err != nil {
		t.Fatal(err)
	}
	if intro != "Intro." || outro != "Outro." || len(cmds) != 2 || cmds[0].Name != "run" || cmds[0].Summary != "run it" || cmds[1].Summary != "roll it back" {
		t.Errorf("got intro %q, cmds %+v, outro %q", intro, cmds, outro)
	}
	if _, _, _, err := parseUsage("Intro.\n\nUsage:\n  x\n\nCommands:\n  run   run it\nnot indented\n\n"); err == nil {
		t.Error("a stray line in the command list was accepted")
	}
}

func gendoc(t *testing.T, args ...string) string {
	t.Helper()
	var out, errb bytes.Buffer
	if code := run(append([]string{"gendoc"}, args...), &out, &errb); code != 0 {
		t.Fatalf("pbxsync gendoc %s: exit %d: %s", strings.Join(args, " "), code, errb.String())
	}
	return out.String()
}

// TestGendocMan renders pbxsync(8) with groff, warnings on, and checks
// that it shows every command and flag the help has.
func TestGendocMan(t *testing.T) {
	page := gendoc(t, "--version", "1.2.3", "--date", "2026-12-02", "man")
	groff, err := exec.LookPath("groff")
	if err != nil {
		t.Fatal("groff not found (Debian: apt-get install groff-base):", err)
	}
	cmd := exec.Command(groff, "-man", "-Tutf8", "-ww", "-P", "-cbou")
	cmd.Stdin = strings.NewReader(page)
	cmd.Env = append(os.Environ(), "MANWIDTH=80")
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil || errb.Len() > 0 {
		t.Fatalf("groff: %v\n%s", err, errb.String())
	}
	text := out.String()
	p, err := programDoc("1.2.3", "2026-12-02")
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range p.Commands {
		if !strings.Contains(text, "pbxsync "+c.Name) {
			t.Errorf("page lacks command %q", c.Name)
		}
		for _, f := range c.Flags {
			if !strings.Contains(text, "--"+f.Name) {
				t.Errorf("page lacks flag --%s of %s", f.Name, c.Name)
			}
		}
	}
	for _, want := range []string{"PBXSYNC(8)", "pbxsync 1.2.3", "2026-12-02", "--to N", "/var/lib/pbxsync", "FILES", "ExecCondition="} {
		if !strings.Contains(text, want) {
			t.Errorf("page lacks %q", want)
		}
	}
	if t.Failed() {
		t.Log(text)
	}
}

// TestGendocBash asks the generated completion, in a real bash, for the
// commands and for a command's flags.
func TestGendocBash(t *testing.T) {
	t.Parallel()
	script := gendoc(t, "bash")
	for words, want := range map[string]string{
		"pbxsync ro":           "rollback",
		"pbxsync rollback --":  "--config --help --hold --job --to",
		"pbxsync check --c":    "--config --configured",
		"pbxsync history --j":  "--job --json",
		"pbxsync help st":      "status",
		"pbxsync demo --dir /": "", // directories; checked only for no error
	} {
		w := strings.Split(words, " ")
		prog := script + "\nCOMP_WORDS=(" + strings.Join(w, " ") + " )\nCOMP_CWORD=" + string(rune('0'+len(w)-1)) +
			"\n_pbxsync\nprintf '%s\\n' \"${COMPREPLY[@]}\" | sort | tr '\\n' ' '\n"
		out, err := exec.Command("bash", "-c", prog).CombinedOutput()
		if err != nil {
			t.Fatalf("%q: %v\n%s", words, err, out)
		}
		if want != "" && strings.TrimSpace(string(out)) != want {
			t.Errorf("complete %q = %q, want %q", words, strings.TrimSpace(string(out)), want)
		}
	}
}

func TestGendocConffile(t *testing.T) {
	if got := gendoc(t, "conffile"); got != config.Template() {
		t.Errorf("gendoc conffile is not config.Template()")
	}
	var out, errb bytes.Buffer
	if code := run([]string{"gendoc", "nosuch"}, &out, &errb); code != 2 {
		t.Errorf("gendoc nosuch: exit %d, want 2", code)
	}
}

// TestCheckConfigured: check --configured (the unit's ExecCondition=)
// says no, with one line, for the packaged file and a missing one, and yes
// for a set-up host, valid or not (the agent then reports the errors).
func TestCheckConfigured(t *testing.T) {
	dir := t.TempDir()
	write := func(name, text string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	for _, tc := range []struct {
		name string
		path string
		code int
		msg  string
	}{
		{"packaged template", write("tmpl.toml", config.Template()), 1, "has no [node] section yet"},
		{"missing", filepath.Join(dir, "none.toml"), 1, "does not exist"},
		{"set up", writeConfig(t, t.TempDir()), 0, ""},
		{"set up but invalid", write("bad.toml", "[node]\nname = 7\n"), 0, ""},
	} {
		var out, errb bytes.Buffer
		code := run([]string{"check", "--configured", "--config", tc.path}, &out, &errb)
		if code != tc.code || out.Len() != 0 {
			t.Errorf("%s: exit %d, stdout %q; want exit %d", tc.name, code, out.String(), tc.code)
		}
		if tc.msg == "" && errb.Len() != 0 || tc.msg != "" && (!strings.Contains(errb.String(), tc.msg) || !strings.Contains(errb.String(), tc.path) || strings.Count(errb.String(), "\n") != 1) {
			t.Errorf("%s: stderr %q; want one line naming %s with %q", tc.name, errb.String(), tc.path, tc.msg)
		}
	}
}

// TestRunConfigErrorExitStatus: run exits 78 (the unit's
// RestartPreventExitStatus=) on an invalid configuration, and the unit
// names that status.
func TestRunConfigErrorExitStatus(t *testing.T) {
	bad := filepath.Join(t.TempDir(), "bad.toml")
	if err := os.WriteFile(bad, []byte("[node]\nname = 7\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	var out, errb bytes.Buffer
	if code := run([]string{"run", "--config", bad}, &out, &errb); code != exitConfig || !strings.Contains(errb.String(), bad+":2:1: node.name") {
		t.Errorf("run with an invalid file: exit %d, stderr %q; want exit %d and FILE:LINE:COL", code, errb.String(), exitConfig)
	}
	unit, err := os.ReadFile("../../examples/systemd/pbxsync.service")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(unit), "\nRestartPreventExitStatus=78\n") {
		t.Error("examples/systemd/pbxsync.service lacks RestartPreventExitStatus=78")
	}
}
