package config

import (
	"strings"
	"testing"
	"time"
)

func TestBackupKey(t *testing.T) {
	cfg := mustParse(t, head+job+"backup = { every = \"24h\", keep = 3, dir = \"/var/backups/pbxsync/\" }\n")
	if b := cfg.Jobs[0].Backup; b != (Backup{Every: 24 * time.Hour, Keep: 3, Dir: "/var/backups/pbxsync"}) {
		t.Fatalf("backup %+v", b)
	}
	cfg = mustParse(t, head+job+"[job.backup]\nevery = \"1h\"\ndir = \"/b\"\n")
	if b := cfg.Jobs[0].Backup; b.Keep != DefaultBackupKeep || b.Every != time.Hour {
		t.Fatalf("backup %+v", b)
	}
	if b := mustParse(t, head+job).Jobs[0].Backup; b != (Backup{}) {
		t.Fatalf("no backup key gave %+v", b)
	}
	// job lines 8-12 after head; the backup line is 13
	for _, tc := range []struct{ text, pos, msg string }{
		{`backup = { keep = 3, dir = "/b" }`, "f.toml:13:1", `missing required key "job.backup.every"`},
		{`backup = { every = "24h" }`, "f.toml:13:1", `missing required key "job.backup.dir"`},
		{`backup = { every = "10s", dir = "/b" }`, "f.toml:13:12", "shorter than the minimum 1m0s"},
		{`backup = { every = "daily", dir = "/b" }`, "f.toml:13:12", `"daily" is not a duration`},
		{`backup = { every = "1h", dir = "b" }`, "f.toml:13:26", "absolute"},
		{`backup = { every = "1h", dir = "/etc/asterisk/backups" }`, "f.toml:13:26", "inside the job's path"},
		{`backup = { every = "1h", dir = "/b", keep = 0 }`, "f.toml:13:38", "between 1 and 100000"},
		{`backup = { every = "1h", dir = "/b", kept = 2 }`, "f.toml:13:38", `unknown key "job.backup.kept"`},
		{`backup = "daily"`, "f.toml:13:1", "expected a table"},
	} {
		_, err := Parse("f.toml", []byte(head+job+tc.text+"\n"))
		if err == nil || !strings.HasPrefix(err.Error(), tc.pos+": ") || !strings.Contains(err.Error(), tc.msg) {
			t.Errorf("%s: %v; want %s: …%s…", tc.text, err, tc.pos, tc.msg)
		}
	}
}
