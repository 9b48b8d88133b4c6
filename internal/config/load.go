package config

import (
	"errors"
	"io/fs"
	"os"
	"strings"
	"time"

	"github.com/BurntSushi/toml"
)

// Defaults filled in by Load and Parse, and limits they check.
const (
	DefaultDataDir         = "/var/lib/pbxsync"
	DefaultLogLevel        = "info"
	DefaultMemoryLimit     = 48 << 20 // [node] memory_limit: 48 MiB
	DefaultKeep            = 20
	DefaultDebounce        = 20 * time.Millisecond
	DefaultCheckTimeout    = 30 * time.Second
	DefaultAsteriskService = "asterisk.service"
	DefaultHookTimeout     = 60 * time.Second
	DefaultPeerDownGrace   = 5 * time.Second
	DefaultPeerUpGrace     = time.Duration(0)

	MinKeep     = 2                // smallest keep: the current and one known-good generation
	MaxDebounce = 10 * time.Second // longest debounce
)

// Load reads the configuration file at path and returns it decoded,
// validated and with every default filled in; Config.File is path.
// Any problem, including an unreadable file, is returned as an ErrorList.
func Load(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		msg := err.Error()
		var pe *fs.PathError
		if errors.As(err, &pe) {
			msg = pe.Err.Error()
		}
		return nil, ErrorList{{File: path, Msg: "cannot read config: " + msg, Err: err}}
	}
	return Parse(path, data)
}

// Parse is Load on data already read; file names it in errors and becomes
// Config.File. The returned error is an ErrorList holding every problem
// found, ordered by position.
func Parse(file string, data []byte) (*Config, error) {
	var raw map[string]any
	if _, err := toml.Decode(string(data), &raw); err != nil {
		return nil, ErrorList{syntaxError(file, data, err)}
	}
	c := &checker{file: file, loc: locate(data)}
	cfg := c.config(raw)
	if len(c.errs) > 0 {
		sortErrors(c.errs)
		return nil, c.errs
	}
	cfg.File, cfg.loc = file, c.loc
	return cfg, nil
}

// syntaxError turns an error of the TOML decoder into an *Error.
func syntaxError(file string, data []byte, err error) *Error {
	var pe toml.ParseError
	if !errors.As(err, &pe) {
		return &Error{File: file, Msg: err.Error(), Err: err}
	}
	// The decoder's line is right, but its column is off by a line for
	// errors at the start of a line; compute the column from the offset.
	line, col := pe.Position.Line, 0
	off := pe.Position.Start
	if len(data) >= 3 && string(data[:3]) == "\xEF\xBB\xBF" {
		off += 3 // the decoder drops the byte order mark
	}
	if off >= 0 && off <= len(data) {
		if l, c := newLines(data).position(off); l == line {
			col = c
		}
	}
	msg := strings.ReplaceAll(pe.Message, `'\x00'`, "end of file")
	return &Error{File: file, Line: line, Col: col, Msg: "syntax error: " + msg, Err: err}
}
