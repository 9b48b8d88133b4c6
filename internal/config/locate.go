package config

import (
	"sort"
	"strconv"
)

// The locator finds where a key or value is written in the TOML text, so
// that semantic errors (found after BurntSushi/toml has decoded the file)
// carry a line and column. toml.MetaData keeps key positions, but not in
// exported form and not per entry of an array of tables, so the locator
// scans the text itself.
//
// It names places with paths built by joinKey and joinIndex, the same
// helpers the checker uses:
//
//	node                 the [node] header (or the first node.x key)
//	node.listen          the listen key in [node]
//	job                  the first [[job]] header
//	job[1]               the second [[job]] header (or inline table)
//	job[1].rule[0].match the match key of its first [[job.rule]]
//	job[1].targets[2]    the third element of its targets array
//
// Keys that are not bare are quoted as Go strings, so a path is never
// ambiguous. Positions of keys point at the first character of the key,
// positions of array elements and inline tables at their first character,
// positions of table headers at the '['.
//
// The locator is only run on text that the TOML decoder accepted, but it
// must not panic or loop on any input: on anything it does not understand
// it stops and keeps what it found so far.

// joinKey returns the path of key inside base.
func joinKey(base, key string) string {
	if !isBareKey(key) {
		key = strconv.Quote(key)
	}
	if base == "" {
		return key
	}
	return base + "." + key
}

// joinIndex returns the path of element i of the array at base.
func joinIndex(base string, i int) string {
	return base + "[" + strconv.Itoa(i) + "]"
}

// parentPath returns the path that encloses p: "a.b[2].c" → "a.b[2]" →
// "a.b" → "a" → "".
func parentPath(p string) string {
	last := -1
	inQuote := false
	for i := 0; i < len(p); i++ {
		switch c := p[i]; {
		case inQuote && c == '\\':
			i++
		case c == '"':
			inQuote = !inQuote
		case !inQuote && (c == '.' || c == '['):
			last = i
		}
	}
	if last < 0 {
		return ""
	}
	return p[:last]
}

func isBareKey(k string) bool {
	if k == "" {
		return false
	}
	for i := 0; i < len(k); i++ {
		if !isBareKeyChar(k[i]) {
			return false
		}
	}
	return true
}

func isBareKeyChar(c byte) bool {
	return c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '_' || c == '-'
}

// locator maps paths to positions in one TOML text.
type locator struct {
	lineStarts []int          // byte offset of the start of each line
	at         map[string]int // path → byte offset
}

// locate scans src and returns its locator.
func locate(src []byte) *locator {
	l := newLines(src)
	s := &scanner{src: src, at: l.at, arrays: map[string]int{}}
	if len(src) >= 3 && src[0] == 0xEF && src[1] == 0xBB && src[2] == 0xBF {
		s.i = 3 // byte order mark
	}
	s.run()
	return l
}

// newLines returns a locator for src with no paths recorded: enough to
// convert offsets to positions.
func newLines(src []byte) *locator {
	l := &locator{lineStarts: []int{0}, at: map[string]int{}}
	for i, c := range src {
		if c == '\n' {
			l.lineStarts = append(l.lineStarts, i+1)
		}
	}
	return l
}

// position converts a byte offset to a 1-based line and byte column.
func (l *locator) position(off int) (line, col int) {
	k := sort.SearchInts(l.lineStarts, off+1) - 1 // last line start <= off
	if k < 0 {
		k = 0
	}
	return k + 1, off - l.lineStarts[k] + 1
}

// lookup returns the position of exactly p.
func (l *locator) lookup(p string) (line, col int, ok bool) {
	off, ok := l.at[p]
	if !ok {
		return 0, 0, false
	}
	line, col = l.position(off)
	return line, col, true
}

// find returns the position of p, or else of the nearest enclosing path
// that has one, or 0, 0 when none has.
func (l *locator) find(p string) (line, col int) {
	for {
		if line, col, ok := l.lookup(p); ok {
			return line, col
		}
		if p == "" {
			return 0, 0
		}
		p = parentPath(p)
	}
}

// maxDepth bounds the nesting of arrays and inline tables the scanner
// follows (the TOML decoder has no such limit, but a config never nests
// deeply).
const maxDepth = 256

type scanner struct {
	src    []byte
	i      int
	depth  int
	at     map[string]int
	arrays map[string]int // path of an array of tables → entries so far
}

func (s *scanner) peek(k int) byte {
	if s.i+k < len(s.src) {
		return s.src[s.i+k]
	}
	return 0
}

func (s *scanner) eof() bool { return s.i >= len(s.src) }

func (s *scanner) setIfAbsent(p string, off int) {
	if _, ok := s.at[p]; !ok {
		s.at[p] = off
	}
}

// skipWS skips spaces and tabs.
func (s *scanner) skipWS() {
	for !s.eof() && (s.src[s.i] == ' ' || s.src[s.i] == '\t') {
		s.i++
	}
}

// skipComment skips a comment up to (not including) the end of the line.
func (s *scanner) skipComment() {
	if s.peek(0) != '#' {
		return
	}
	for !s.eof() && s.src[s.i] != '\n' {
		s.i++
	}
}

// skipAll skips whitespace, newlines and comments.
func (s *scanner) skipAll() {
	for !s.eof() {
		switch s.src[s.i] {
		case ' ', '\t', '\r', '\n':
			s.i++
		case '#':
			s.skipComment()
		default:
			return
		}
	}
}

// run scans the whole text, statement by statement.
func (s *scanner) run() {
	cur := "" // path of the current table
	for {
		s.skipAll()
		if s.eof() {
			return
		}
		start := s.i
		if s.src[s.i] == '[' {
			array := s.peek(1) == '['
			s.i++
			if array {
				s.i++
			}
			s.skipWS()
			parts, ok := s.key()
			if !ok {
				return
			}
			s.skipWS()
			if s.peek(0) != ']' || array && s.peek(1) != ']' {
				return
			}
			s.i++
			if array {
				s.i++
			}
			cur = s.header(parts, array, start)
		} else {
			parts, ok := s.key()
			if !ok {
				return
			}
			s.skipWS()
			if s.peek(0) != '=' {
				return
			}
			s.i++
			s.skipWS()
			if !s.value(s.keyPath(cur, parts, start)) {
				return
			}
		}
		s.skipWS()
		s.skipComment()
		if !s.eof() && s.src[s.i] != '\n' && s.src[s.i] != '\r' {
			return
		}
	}
}

// header records a [table] or [[array]] header at off and returns the path
// of the table it opens.
func (s *scanner) header(parts []string, array bool, off int) string {
	p := ""
	for k, part := range parts {
		p = joinKey(p, part)
		last := k == len(parts)-1
		if last && array {
			n := s.arrays[p]
			s.arrays[p] = n + 1
			s.setIfAbsent(p, off)
			p = joinIndex(p, n)
			s.at[p] = off
			return p
		}
		if n := s.arrays[p]; n > 0 {
			p = joinIndex(p, n-1)
		}
		if last {
			s.at[p] = off
		} else {
			s.setIfAbsent(p, off)
		}
	}
	return p
}

// keyPath records the (possibly dotted) key parts, written at off inside the
// table at base, and returns its path.
func (s *scanner) keyPath(base string, parts []string, off int) string {
	p := base
	for k, part := range parts {
		p = joinKey(p, part)
		if k == len(parts)-1 {
			s.at[p] = off
		} else {
			s.setIfAbsent(p, off)
		}
	}
	return p
}

// key reads a dotted key: bare, "basic" or 'literal' parts joined by dots.
func (s *scanner) key() ([]string, bool) {
	var parts []string
	for {
		s.skipWS()
		part, ok := s.keyPart()
		if !ok {
			return nil, false
		}
		parts = append(parts, part)
		s.skipWS()
		if s.peek(0) != '.' {
			return parts, true
		}
		s.i++
	}
}

func (s *scanner) keyPart() (string, bool) {
	start := s.i
	switch s.peek(0) {
	case '"':
		if !s.basicString() || s.i-start < 2 {
			return "", false
		}
		raw := string(s.src[start:s.i])
		if v, err := strconv.Unquote(raw); err == nil {
			return v, true
		}
		return raw[1 : len(raw)-1], true // an escape Go does not know (\e); good enough
	case '\'':
		if !s.literalString() || s.i-start < 2 {
			return "", false
		}
		return string(s.src[start+1 : s.i-1]), true
	}
	for !s.eof() && isBareKeyChar(s.src[s.i]) {
		s.i++
	}
	if s.i == start {
		return "", false
	}
	return string(s.src[start:s.i]), true
}

// value skips one value; elements of arrays and keys of inline tables are
// recorded under p.
func (s *scanner) value(p string) bool {
	if s.depth >= maxDepth {
		return false
	}
	s.depth++
	defer func() { s.depth-- }()
	switch s.peek(0) {
	case 0:
		return false
	case '"':
		return s.basicString()
	case '\'':
		return s.literalString()
	case '[':
		s.i++
		for n := 0; ; {
			s.skipAll()
			if s.eof() {
				return false
			}
			if s.src[s.i] == ']' {
				s.i++
				return true
			}
			ep := joinIndex(p, n)
			s.at[ep] = s.i
			if !s.value(ep) {
				return false
			}
			s.skipAll()
			switch s.peek(0) {
			case ',':
				s.i++
				n++
			case ']':
				s.i++
				return true
			default:
				return false
			}
		}
	case '{':
		s.i++
		for {
			s.skipAll()
			if s.eof() {
				return false
			}
			if s.src[s.i] == '}' {
				s.i++
				return true
			}
			start := s.i
			parts, ok := s.key()
			if !ok {
				return false
			}
			s.skipWS()
			if s.peek(0) != '=' {
				return false
			}
			s.i++
			s.skipWS()
			if !s.value(s.keyPath(p, parts, start)) {
				return false
			}
			s.skipAll()
			switch s.peek(0) {
			case ',':
				s.i++
			case '}':
				s.i++
				return true
			default:
				return false
			}
		}
	}
	// A number, boolean or date-time (which may contain one space).
	start := s.i
	for !s.eof() {
		switch s.src[s.i] {
		case ',', ']', '}', '#', '\n', '\r':
			return s.i > start
		}
		s.i++
	}
	return s.i > start
}

// basicString skips a basic ("...") or multi-line basic string.
func (s *scanner) basicString() bool {
	if s.peek(1) == '"' && s.peek(2) == '"' {
		s.i += 3
		for !s.eof() {
			switch {
			case s.src[s.i] == '\\':
				s.i += 2
			case s.src[s.i] == '"' && s.peek(1) == '"' && s.peek(2) == '"':
				s.i += 3
				// Up to two quotes may end the content right before the delimiter.
				for k := 0; k < 2 && s.peek(0) == '"'; k++ {
					s.i++
				}
				return true
			default:
				s.i++
			}
		}
		return false
	}
	s.i++
	for !s.eof() {
		switch s.src[s.i] {
		case '\\':
			s.i += 2
		case '"':
			s.i++
			return true
		case '\n':
			return false
		default:
			s.i++
		}
	}
	return false
}

// literalString skips a literal ('...') or multi-line literal string.
func (s *scanner) literalString() bool {
	if s.peek(1) == '\'' && s.peek(2) == '\'' {
		s.i += 3
		for !s.eof() {
			if s.src[s.i] == '\'' && s.peek(1) == '\'' && s.peek(2) == '\'' {
				s.i += 3
				for k := 0; k < 2 && s.peek(0) == '\''; k++ {
					s.i++
				}
				return true
			}
			s.i++
		}
		return false
	}
	s.i++
	for !s.eof() {
		switch s.src[s.i] {
		case '\'':
			s.i++
			return true
		case '\n':
			return false
		}
		s.i++
	}
	return false
}
