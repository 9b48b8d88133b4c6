package asteriskctl

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// realChannels is "logger show channels" of Asterisk GIT-master-f0c1c1a7b7
// with the stock logger.conf, as the CLI prints it.
var realChannels = strings.Split(`Logger queue limit: 1000

Channel                             Type     Formatter  Status    Configuration
-------                             ----     ---------  ------    -------------
/var/log/asterisk/messages.log      File     default    Enabled    - NOTICE WARNING ERROR 
                                    Console  default    Enabled    - NOTICE WARNING ERROR VERBOSE 
`, "\n")

func TestParseLogDirAndChannels(t *testing.T) {
	settings := []string{"", "PBX Core settings", "-----------------", "  Version:                     GIT-master-f0c1c1a7b7",
		"  Configuration directory:     /etc/asterisk", "  Log directory:               /var/log/asterisk"}
	if got := ParseLogDir(settings); got != "/var/log/asterisk" {
		t.Fatalf("log dir %q", got)
	}
	chans := ParseLogChannels(realChannels)
	if len(chans) != 2 || chans[0].Name != "/var/log/asterisk/messages.log" || chans[0].Type != "File" || !chans[0].Enabled ||
		strings.Join(chans[0].Levels, " ") != "NOTICE WARNING ERROR" || chans[1].Type != "Console" {
		t.Fatalf("channels %+v", chans)
	}
	loc, err := PickLogChannel("/var/log/asterisk", chans, nil)
	if err != nil || loc.Path != "/var/log/asterisk/messages.log" {
		t.Fatalf("picked %+v, %v", loc, err)
	}
}

func TestPickLogChannel(t *testing.T) {
	dir := t.TempDir()
	long := filepath.Join(dir, "a-very-long-directory-name", "asterisk-messages.log") // cut by the CLI
	if err := os.MkdirAll(filepath.Dir(long), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(long, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	regular := func(p string) bool { fi, err := os.Stat(p); return err == nil && fi.Mode().IsRegular() }
	for _, tc := range []struct {
		name  string
		chans []LogChannel
		want  string
		err   string
	}{
		{"errors only to a file without warnings", []LogChannel{{Name: "/l/errors", Type: "File", Enabled: true, Levels: []string{"ERROR"}}}, "", "no file channel logs WARNING and ERROR"},
		{"disabled", []LogChannel{{Name: "/l/messages.log", Type: "File", Levels: []string{"WARNING", "ERROR"}}}, "", "no file"},
		{"syslog only", []LogChannel{{Name: "syslog.local0", Type: "Syslog", Enabled: true, Levels: []string{"WARNING", "ERROR"}}}, "", "no file"},
		{"messages preferred", []LogChannel{
			{Name: "/l/full", Type: "File", Enabled: true, Levels: []string{"DEBUG", "NOTICE", "WARNING", "ERROR", "VERBOSE"}},
			{Name: "/l/messages", Type: "File", Enabled: true, Levels: []string{"WARNING", "ERROR"}},
		}, "/l/messages", ""},
		{"relative name", []LogChannel{{Name: "messages.log", Type: "File", Enabled: true, Levels: []string{"WARNING", "ERROR"}}}, "/var/log/asterisk/messages.log", ""},
		{"cut name completed", []LogChannel{{Name: long[:35], Type: "File", Enabled: true, Levels: []string{"WARNING", "ERROR"}}}, long, ""},
	} {
		loc, err := PickLogChannel("/var/log/asterisk", tc.chans, regular)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%s: %+v, %v; want error %q", tc.name, loc, err, tc.err)
			}
			continue
		}
		if err != nil || loc.Path != tc.want {
			t.Errorf("%s: %+v, %v; want %s", tc.name, loc, err, tc.want)
		}
	}
}
