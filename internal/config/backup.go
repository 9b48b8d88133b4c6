package config

import "time"

// Backup is a job's `backup = { every = "24h", keep = 7, dir = "..." }`:
// the agent writes an archive of the job's newest good generation to Dir
// every Every (pbxsync backup's format) and keeps the newest Keep there.
// The zero Backup means no scheduled backups.
type Backup struct {
	Every time.Duration // required, at least MinBackupEvery; 0: no backups
	Keep  int           // archives kept in Dir; default DefaultBackupKeep, at least 1
	Dir   string        // required absolute directory
}

// Defaults and limits of scheduled backups.
const (
	DefaultBackupKeep = 7
	MinBackupEvery    = time.Minute
)

// backup checks a job's backup table; the zero Backup when there is none.
func (c *checker) backup(s *section, j *Job) Backup {
	t, ok := s.table("backup")
	if !ok {
		return Backup{}
	}
	t.ctx = s.ctx
	b := Backup{Keep: DefaultBackupKeep}
	if !t.has("every") {
		t.missing("every")
	} else if b.Every = t.duration("every", 0, 0); b.Every != 0 && b.Every < MinBackupEvery {
		t.errf("every", "%s is shorter than the minimum %s", b.Every, MinBackupEvery)
	}
	if v, ok := t.integer("keep"); ok {
		if v < 1 || v > 100_000 {
			t.errf("keep", "must be between 1 and 100000, got %d", v)
		} else {
			b.Keep = int(v)
		}
	}
	if !t.has("dir") {
		t.missing("dir")
	} else {
		b.Dir = t.absPath("dir", "")
		if j.Path != "" && (b.Dir == j.Path || hasPathPrefix(b.Dir, j.Path)) {
			t.errf("dir", "%s is inside the job's path %s: the job would sync its own backups", b.Dir, j.Path)
		}
	}
	t.finish()
	return b
}

func hasPathPrefix(p, dir string) bool {
	return len(p) > len(dir) && p[:len(dir)] == dir && (dir == "/" || p[len(dir)] == '/')
}
