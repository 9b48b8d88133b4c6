package amisim

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestProblemOf(t *testing.T) {
	for _, tc := range []struct {
		name, text string
		want       string
		line       int
	}{
		{"good.conf", "[general]\n; comment\nfoo = bar\nexten => 1,1,NoOp()\n same => n,Hangup()\n#include x.conf\n[tpl](!)\n[a](tpl)\nk=v\n", "", 0},
		{"q.conf", "[general]\n;\n; Global settings for call queues\n[sales\nstrategy=ringall\n", ScenarioBroken, 4},
		{"q.conf", "[general]\nfoo\n", ScenarioNoEquals, 2},
		{"q.conf", "[general]\n;-- block\nfoo\n[x\n--;\nk=v ; c\n", "", 0},
		{"q.conf", "[general]\nk=v ;-- a --; \nbare\n", ScenarioNoEquals, 3},
		{"extensions.ael", "context x {\n  1 => NoOp();\n};\n", "", 0},
		{"extensions.ael", "context x {\n};\n" + BrokenLine + "\n", ScenarioBroken, 3},
	} {
		p := filepath.Join(t.TempDir(), tc.name)
		if err := os.WriteFile(p, []byte(tc.text), 0o644); err != nil {
			t.Fatal(err)
		}
		got, line := problemOf(p)
		if got != tc.want || line != tc.line {
			t.Errorf("%s %q: %q line %d, want %q line %d", tc.name, tc.text, got, line, tc.want, tc.line)
		}
	}
}

// TestRecordedTranscript: the shipped transcript names its Asterisk and
// replays its answers: a broken queues.conf answers Success and logs the
// recorded lines with the file and line filled in; a module it had not
// loaded answers No such module / Module not loaded.
func TestRecordedTranscript(t *testing.T) {
	tr, err := Recorded()
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(tr.Asterisk, "Asterisk ") || tr.Version == "" {
		t.Fatalf("transcript header: %q %q", tr.Asterisk, tr.Version)
	}
	dir := t.TempDir()
	logPath := filepath.Join(dir, "messages.log")
	s := start(t, Config{ConfigDir: dir, LogPath: logPath, Transcript: tr})
	if err := os.WriteFile(filepath.Join(dir, "queues.conf"), []byte("[general]\n;\n;\n[sales\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	c := dial(t, s)
	c.login()
	if got := c.ask("Reload", "Module", "app_queue.so"); !strings.Contains(got, "Response: Success") {
		t.Fatalf("broken queues.conf: %q", got)
	}
	b, _ := os.ReadFile(logPath)
	for _, want := range []string{"WARNING[", "config.c: parse error: no closing ']', line 4 of " + filepath.Join(dir, "queues.conf"), "ERROR[", "app_queue.c: Config file queues.conf is in an invalid format.  Aborting."} {
		if !strings.Contains(string(b), want) {
			t.Errorf("log lacks %q:\n%s", want, b)
		}
	}
	if got := c.ask("Reload", "Module", "res_pjsip.so"); !strings.Contains(got, "Response: Error") || !strings.Contains(got, "Message: No such module") {
		t.Fatalf("res_pjsip: %q", got)
	}
	if got := c.ask("ModuleCheck", "Module", "res_pjsip.so"); !strings.Contains(got, "Message: Module not loaded") {
		t.Fatalf("ModuleCheck res_pjsip: %q", got)
	}
	if got := c.ask("Reload", "Module", "cdr_custom.so"); !strings.Contains(got, "Message: Module not initialized") {
		t.Fatalf("cdr_custom (declined): %q", got)
	}
}

// ask sends an action and returns its answer.
func (c *client) ask(action string, kv ...string) string {
	c.send(action, kv...)
	return c.msg()
}
