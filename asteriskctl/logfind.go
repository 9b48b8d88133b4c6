package asteriskctl

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
)

// LogLocation is where Asterisk writes the log that log checks read, as
// Asterisk itself reported it.
type LogLocation struct {
	Path   string // the log file, e.g. /var/log/asterisk/messages.log
	Dir    string // Asterisk's log directory ("core show settings")
	Levels string // the levels the channel logs, e.g. "NOTICE WARNING ERROR"
	How    string // how it was found, for status and logs
}

// logChannelWidth is the width of the Channel column of "logger show
// channels" (logger.c FORMATL "%-35.35s"): a longer file name is cut.
const logChannelWidth = 35

// FindLog asks Asterisk where it logs: "core show settings" gives the log
// directory, "logger show channels" the file channels and their levels. It
// returns the file channel that logs both WARNING and ERROR (the stock
// logger.conf: messages.log). exists reports whether a path exists on
// this host as a regular file; it resolves a channel name the CLI cut at
// 35 characters.
func FindLog(ctx context.Context, c Controller, exists func(string) bool) (LogLocation, error) {
	settings, err := c.Command(ctx, "core show settings")
	if err != nil {
		return LogLocation{}, fmt.Errorf("find the Asterisk log: %w", err)
	}
	dir := ParseLogDir(settings)
	channels, err := c.Command(ctx, "logger show channels")
	if err != nil {
		return LogLocation{}, fmt.Errorf("find the Asterisk log: %w", err)
	}
	loc, err := PickLogChannel(dir, ParseLogChannels(channels), exists)
	if err != nil {
		return LogLocation{}, fmt.Errorf("find the Asterisk log: %w", err)
	}
	return loc, nil
}

// ParseLogDir returns the "Log directory:" of "core show settings", or "".
func ParseLogDir(lines []string) string {
	for _, l := range splitLines(lines) {
		k, v, ok := strings.Cut(strings.TrimSpace(l), ":")
		if ok && strings.EqualFold(strings.TrimSpace(k), "Log directory") {
			return strings.TrimSpace(v)
		}
	}
	return ""
}

// LogChannel is one line of "logger show channels".
type LogChannel struct {
	Name    string // file name (absolute for File channels), or "syslog.local0", "console"
	Type    string // File, Console or Syslog
	Enabled bool
	Levels  []string // DEBUG, NOTICE, WARNING, ERROR, VERBOSE, DTMF, SECURITY …
}

// ParseLogChannels parses the table of "logger show channels":
//
//	Channel                             Type     Formatter  Status    Configuration
//	-------                             ----     ---------  ------    -------------
//	/var/log/asterisk/messages.log      File     default    Enabled   - NOTICE WARNING ERROR
func ParseLogChannels(lines []string) []LogChannel {
	var out []LogChannel
	for _, l := range splitLines(lines) {
		before, levels, ok := strings.Cut(l, " - ")
		if !ok {
			continue
		}
		f := strings.Fields(before)
		if len(f) < 3 || f[0] == "Channel" || strings.HasPrefix(f[0], "---") {
			continue
		}
		// The name may hold spaces; Type, Formatter and Status are the
		// last three words.
		var name, typ, status string
		switch {
		case len(f) >= 4:
			name, typ, status = strings.Join(f[:len(f)-3], " "), f[len(f)-3], f[len(f)-1]
		case isLogType(f[0]): // the console: no name
			typ, status = f[0], f[2]
		default: // an Asterisk without the Formatter column
			name, typ, status = f[0], f[1], f[2]
		}
		out = append(out, LogChannel{Name: name, Type: typ, Enabled: strings.EqualFold(status, "Enabled"), Levels: strings.Fields(levels)})
	}
	return out
}

func isLogType(s string) bool {
	return strings.EqualFold(s, "File") || strings.EqualFold(s, "Console") || strings.EqualFold(s, "Syslog")
}

// PickLogChannel chooses the file channel that log checks read: enabled,
// logging WARNING and ERROR, the one named messages* first. A name that
// fills the CLI's column (possibly cut) is completed from the files beside
// it that exist.
func PickLogChannel(dir string, chans []LogChannel, exists func(string) bool) (LogLocation, error) {
	var best *LogChannel
	score := func(c *LogChannel) int {
		s := 0
		if strings.HasPrefix(filepath.Base(c.Name), "messages") {
			s += 2
		}
		if hasLevel(c.Levels, "NOTICE") {
			s++
		}
		return s
	}
	for i := range chans {
		c := &chans[i]
		if !strings.EqualFold(c.Type, "File") || !c.Enabled || !hasLevel(c.Levels, "WARNING") || !hasLevel(c.Levels, "ERROR") {
			continue
		}
		if best == nil || score(c) > score(best) {
			best = c
		}
	}
	if best == nil {
		return LogLocation{Dir: dir}, errors.New("no file channel logs WARNING and ERROR (logger show channels); add e.g. \"messages.log => notice,warning,error\" to logger.conf or set [asterisk] log")
	}
	p := best.Name
	if !filepath.IsAbs(p) && dir != "" {
		p = filepath.Join(dir, p)
	}
	how := "found via AMI: logger show channels"
	if len(best.Name) >= logChannelWidth && exists != nil && !exists(p) {
		if full, ok := completeCut(p, exists); ok {
			p = full
			how += " (name completed: the CLI cuts it at 35 characters)"
		} else {
			return LogLocation{Dir: dir}, fmt.Errorf("the log channel %q is cut by the CLI at 35 characters and no file starting so exists; set [asterisk] log", best.Name)
		}
	}
	return LogLocation{Path: p, Dir: dir, Levels: strings.Join(best.Levels, " "), How: how}, nil
}

// completeCut finds the file whose path starts with the cut path p: a
// file matching p*, or one in a directory matching p* (the cut fell in
// a directory name). With several, the one named messages* wins when it
// is alone.
func completeCut(p string, exists func(string) bool) (string, bool) {
	matches, _ := filepath.Glob(globEscape(p) + "*")
	var found []string
	for _, m := range matches {
		if exists(m) {
			found = append(found, m)
			continue
		}
		found = append(found, filesBelow(m, 3, exists)...)
	}
	if len(found) == 1 {
		return found[0], true
	}
	var msgs []string
	for _, f := range found {
		if strings.HasPrefix(filepath.Base(f), "messages") {
			msgs = append(msgs, f)
		}
	}
	if len(msgs) == 1 {
		return msgs[0], true
	}
	return "", false
}

// filesBelow lists the files under dir, at most depth levels down.
func filesBelow(dir string, depth int, exists func(string) bool) []string {
	if depth == 0 {
		return nil
	}
	inner, _ := filepath.Glob(filepath.Join(globEscape(dir), "*"))
	var out []string
	for _, f := range inner {
		if exists(f) {
			out = append(out, f)
		} else {
			out = append(out, filesBelow(f, depth-1, exists)...)
		}
	}
	return out
}

func globEscape(s string) string {
	r := strings.NewReplacer(`\`, `\\`, `*`, `\*`, `?`, `\?`, `[`, `\[`)
	return r.Replace(s)
}

func hasLevel(levels []string, l string) bool {
	for _, x := range levels {
		if strings.EqualFold(x, l) {
			return true
		}
	}
	return false
}

// splitLines splits Command output whose entries may hold several lines.
func splitLines(lines []string) []string {
	var out []string
	for _, l := range lines {
		out = append(out, strings.Split(strings.ReplaceAll(l, "\r", ""), "\n")...)
	}
	return out
}
