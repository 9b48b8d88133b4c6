package asteriskctl

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"time"
)

// DefaultLogPatterns returns the message patterns a [LogChecker] reports by
// default (case-insensitive substrings of an ERROR or WARNING line). They
// are what Asterisk writes when a reload met a configuration it could not
// use, often while still answering Success:
//
//	parse error                  config.c: "parse error: No category context for line 3 of …"
//	invalid format               "Invalid format …"
//	error parsing                "Error parsing …"
//	syntax error                 pbx_ael, res_config_* "Syntax error …"
//	failed to parse              "Failed to parse …"
//	could not find option        sorcery/config_options: "Could not find option suitable for category …"
//	could not create an object   res_sorcery_config: "Could not create an object of type … from configuration file"
//	unable to load config        "Unable to load config extensions.conf"
//	cannot be parsed             config_options.c: "Contents of acl.conf are invalid and cannot be parsed"
//	could not be parsed          cdr_manager: "Config file 'cdr_manager.conf' could not be parsed"
//
// Measured on Asterisk master (docs/asterisk.md): every parse error of a
// configuration file is a config.c "parse error" WARNING, and modules add
// their own ERROR ("… is in an invalid format.  Aborting.").
func DefaultLogPatterns() []string {
	return []string{
		"parse error",
		"invalid format",
		"error parsing",
		"syntax error",
		"failed to parse",
		"could not find option",
		"could not create an object",
		"unable to load config",
		"cannot be parsed",
		"could not be parsed",
	}
}

// DefaultScopedLogPatterns returns the patterns a [LogChecker] reports
// only when the line names one of its Files: warnings Asterisk survives
// (it skips the line and uses the rest of the file), which pbxsync counts
// as errors in the files a generation changed, not in files it left alone:
//
//	no '=' (equal sign)          config.c: "No '=' (equal sign) in line 3 of /etc/asterisk/queues.conf"
func DefaultScopedLogPatterns() []string {
	return []string{"no '=' (equal sign)"}
}

// DefaultLogSettle is how long a LogChecker made by NewLogChecker waits
// before reading, because Asterisk's logger thread writes a little after the
// action answered.
const DefaultLogSettle = 100 * time.Millisecond

// logLevel finds the level of an Asterisk log line:
// "[2024-05-01 10:00:00] WARNING[1234][C-00000001]: config.c:…".
var logLevel = regexp.MustCompile(`(?:^|[\s\]])(ERROR|WARNING)(?:\[|:)`)

// LogChecker reads what Asterisk wrote to its log since a [LogMark] and
// reports ERROR and WARNING lines that match its patterns. It tolerates log
// rotation (the old file renamed beside the new one, e.g. messages.1) and
// truncation (copytruncate).
type LogChecker struct {
	Path     string   // the Asterisk log, e.g. /var/log/asterisk/messages
	Patterns []string // case-insensitive substrings; nil: DefaultLogPatterns()
	// Scoped patterns are reported only when the line ends with
	// "of PATH" and PATH is one of Files; nil: DefaultScopedLogPatterns().
	Scoped []string
	// Files are the files that matter for Scoped patterns: absolute
	// paths, or paths relative to any directory (matched as a suffix after
	// a '/').
	Files    []string
	Settle   time.Duration // wait before reading
	MaxBytes int64         // most bytes read per check (default 16 MiB); the rest is reported as Incomplete
	MaxLine  int           // longer lines are cut (default 64 KiB)
}

// NewLogChecker returns a LogChecker for path with the default patterns and
// DefaultLogSettle.
func NewLogChecker(path string) *LogChecker {
	return &LogChecker{Path: path, Settle: DefaultLogSettle}
}

// LogMark is a position in the log, taken before an action.
type LogMark struct {
	Path   string
	Offset int64
	At     time.Time
	info   os.FileInfo // identity of the file; nil when it did not exist
}

// LogFinding is one reported log line.
type LogFinding struct {
	Level string // "ERROR" or "WARNING"
	Line  string // the whole line
	File  string // the file it was read from (the rotated one, after a rotation)
}

// LogResult is the outcome of [LogChecker.Since].
type LogResult struct {
	Findings   []LogFinding
	BytesRead  int64
	Rotated    bool   // the log was rotated since the mark
	Truncated  bool   // the log was truncated since the mark
	Incomplete string // why part of the log since the mark could not be read; "" when all was read
}

// OK reports whether nothing was found.
func (r LogResult) OK() bool { return len(r.Findings) == 0 }

// Error returns an error listing the findings, or nil when there are none.
func (r LogResult) Error() error {
	if len(r.Findings) == 0 {
		return nil
	}
	lines := make([]string, 0, len(r.Findings))
	for _, f := range r.Findings {
		lines = append(lines, f.Line)
	}
	return fmt.Errorf("asterisk log shows %d configuration problem(s): %s", len(r.Findings), strings.Join(lines, " | "))
}

// Mark returns the current end of the log. A missing log is not an error:
// the check then reads the whole file once it exists.
func (c *LogChecker) Mark() (LogMark, error) {
	m := LogMark{Path: c.Path, At: time.Now()}
	fi, err := os.Stat(c.Path)
	if errors.Is(err, os.ErrNotExist) {
		return m, nil
	}
	if err != nil {
		return m, fmt.Errorf("log check: %w", err)
	}
	m.info, m.Offset = fi, fi.Size()
	return m, nil
}

// Since reads what was written to the log after mark and returns the
// matching lines.
func (c *LogChecker) Since(ctx context.Context, mark LogMark) (LogResult, error) {
	var res LogResult
	if c.Settle > 0 {
		t := time.NewTimer(c.Settle)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return res, fmt.Errorf("log check: %w", ctx.Err())
		}
	}
	budget := c.MaxBytes
	if budget <= 0 {
		budget = 16 << 20
	}
	cur, err := os.Stat(mark.Path)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return res, fmt.Errorf("log check: %w", err)
	}
	curExists := err == nil
	start := int64(0)
	switch {
	case mark.info == nil:
		// The log did not exist at the mark: all of it is new.
	case curExists && os.SameFile(mark.info, cur):
		if cur.Size() >= mark.Offset {
			start = mark.Offset
		} else {
			res.Truncated = true
		}
	default:
		res.Rotated = true
		old, found := c.findRotated(mark)
		if found != "" {
			off := mark.Offset
			if old.Size() < off {
				off = 0
				res.Truncated = true
			}
			if err := c.scan(ctx, found, off, &budget, &res); err != nil {
				return res, err
			}
		} else {
			res.Incomplete = "the log was rotated and the old file was not found beside it (compressed or removed)"
		}
	}
	if curExists {
		if err := c.scan(ctx, mark.Path, start, &budget, &res); err != nil {
			return res, err
		}
	}
	return res, nil
}

// findRotated looks beside the log for the file it was at the mark.
func (c *LogChecker) findRotated(mark LogMark) (os.FileInfo, string) {
	matches, _ := filepath.Glob(mark.Path + "*")
	dir := filepath.Dir(mark.Path)
	if more, err := filepath.Glob(filepath.Join(dir, "*"+filepath.Base(mark.Path)+"*")); err == nil {
		matches = append(matches, more...)
	}
	for _, p := range matches {
		if p == mark.Path {
			continue
		}
		fi, err := os.Stat(p)
		if err == nil && fi.Mode().IsRegular() && os.SameFile(mark.info, fi) {
			return fi, p
		}
	}
	return nil, ""
}

// scan reads path from off and adds the matching lines to res.
func (c *LogChecker) scan(ctx context.Context, path string, off int64, budget *int64, res *LogResult) error {
	f, err := os.Open(path)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil
		}
		return fmt.Errorf("log check: %w", err)
	}
	defer f.Close()
	if _, err := f.Seek(off, io.SeekStart); err != nil {
		return fmt.Errorf("log check: %w", err)
	}
	maxLine := c.MaxLine
	if maxLine <= 0 {
		maxLine = 64 << 10
	}
	patterns := c.Patterns
	if patterns == nil {
		patterns = DefaultLogPatterns()
	}
	lower := lowerAll(patterns)
	scoped := c.Scoped
	if scoped == nil {
		scoped = DefaultScopedLogPatterns()
	}
	lowerScoped := lowerAll(scoped)
	br := bufio.NewReaderSize(io.LimitReader(f, max(*budget, 0)), maxLine)
	var readHere int64
	for n := 0; ; n++ {
		if n%1024 == 0 && ctx.Err() != nil {
			return fmt.Errorf("log check: %w", ctx.Err())
		}
		line, err := br.ReadSlice('\n')
		read := int64(len(line))
		if errors.Is(err, bufio.ErrBufferFull) {
			// Cut the line; skip the rest of it.
			line = append([]byte(nil), line...)
			for errors.Is(err, bufio.ErrBufferFull) {
				var more []byte
				more, err = br.ReadSlice('\n')
				read += int64(len(more))
			}
		}
		res.BytesRead += read
		readHere += read
		*budget -= read
		if len(line) > 0 {
			c.match(path, strings.TrimRight(string(line), "\r\n"), lower, lowerScoped, res)
		}
		if err != nil {
			if errors.Is(err, io.EOF) {
				if *budget <= 0 && res.Incomplete == "" {
					if fi, err := f.Stat(); err == nil && fi.Size() > off+readHere {
						res.Incomplete = fmt.Sprintf("stopped after %d bytes (MaxBytes)", res.BytesRead)
					}
				}
				return nil
			}
			return fmt.Errorf("log check: read %s: %w", path, err)
		}
	}
}

func lowerAll(ps []string) []string {
	out := make([]string, len(ps))
	for i, p := range ps {
		out[i] = strings.ToLower(p)
	}
	return out
}

// namedFile finds the configuration file a config.c line names at its
// end: "… in line 3 of /etc/asterisk/queues.conf".
var namedFile = regexp.MustCompile(` of (\S+?)\.?\s*$`)

func (c *LogChecker) match(path, line string, lowerPatterns, lowerScoped []string, res *LogResult) {
	m := logLevel.FindStringSubmatch(line)
	if m == nil {
		return
	}
	l := strings.ToLower(line)
	for _, p := range lowerPatterns {
		if strings.Contains(l, p) {
			res.Findings = append(res.Findings, LogFinding{Level: m[1], Line: line, File: path})
			return
		}
	}
	for _, p := range lowerScoped {
		if strings.Contains(l, p) && c.namesFile(line) {
			res.Findings = append(res.Findings, LogFinding{Level: m[1], Line: line, File: path})
			return
		}
	}
}

// namesFile reports whether line names one of c.Files at its end.
func (c *LogChecker) namesFile(line string) bool {
	m := namedFile.FindStringSubmatch(line)
	if m == nil {
		return false
	}
	named := m[1]
	for _, f := range c.Files {
		if f == "" {
			continue
		}
		if named == f || (!strings.HasPrefix(f, "/") && strings.HasSuffix(named, "/"+f)) {
			return true
		}
	}
	return false
}
