package config

import (
	"fmt"
	"os"
	"strings"
)

// Checks that need more than the file (does the secret file exist, does
// the DSN parse, does this agent support the mode) run after Load, in the
// one function that `pbxsync check` and `pbxsync run` share. ErrorAt gives
// their errors the same FILE:LINE:COL as Load's.

// ErrorAt returns an *Error at the position of key in the file c was
// loaded from (or of the nearest enclosing table that has a position).
// key is a path as JobKey, PeerKey and RuleKey build, or a dotted key such
// as "node.data_dir" or "asterisk.secret_file".
func (c *Config) ErrorAt(key string, err error, format string, args ...any) *Error {
	e := &Error{File: c.File, Msg: fmt.Sprintf(format, args...), Err: err}
	if c.loc != nil {
		e.Line, e.Col = c.loc.find(key)
	}
	return e
}

// JobKey is the ErrorAt path of key of the i-th [[job]] (from 0); key ""
// is the job's [[job]] header.
func JobKey(i int, key string) string { return sub(joinIndex("job", i), key) }

// PeerKey is the ErrorAt path of key of the i-th [[peer]] (from 0).
func PeerKey(i int, key string) string { return sub(joinIndex("peer", i), key) }

// RuleKey is the ErrorAt path of key of rule r (from 0) of job i.
func RuleKey(i, r int, key string) string {
	return sub(joinIndex(joinKey(joinIndex("job", i), "rule"), r), key)
}

func sub(base, key string) string {
	if key == "" {
		return base
	}
	return joinKey(base, key)
}

// ReadDSN returns the connection string of a postgres job: dsn, or the
// trimmed content of dsn_file. The DSN is a secret: callers must not show
// it, and no error here holds it.
func (j *Job) ReadDSN() (string, error) {
	if j.DSN != "" {
		return j.DSN, nil
	}
	b, err := os.ReadFile(j.DSNFile)
	if err != nil {
		return "", fmt.Errorf("read dsn_file: %w", err)
	}
	s := strings.TrimSpace(string(b))
	if s == "" {
		return "", fmt.Errorf("dsn_file %s is empty", j.DSNFile)
	}
	return s, nil
}
