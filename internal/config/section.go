package config

import (
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/BurntSushi/toml"
)

// checker walks the decoded TOML, building the Config and collecting errors.
type checker struct {
	file string
	loc  *locator
	errs ErrorList
}

// add records an error at the position of path (or of the nearest
// enclosing path with a known position).
func (c *checker) add(path string, err error, msg string) {
	line, col := c.loc.find(path)
	c.errs = append(c.errs, &Error{File: c.file, Line: line, Col: col, Msg: msg, Err: err})
}

// line returns the line of path, or 0.
func (c *checker) line(path string) int {
	line, _, _ := c.loc.lookup(path)
	return line
}

// section is one TOML table being checked.
type section struct {
	c    *checker
	m    map[string]any
	path string          // locator path: "node", "job[2]", "job[2].rule[0]"
	key  string          // dotted key without indices: "node", "job", "job.rule"
	ctx  string          // message prefix for entries of arrays: `job "conf"`
	seen map[string]bool // keys read so far; the rest are unknown
}

func (c *checker) section(m map[string]any, path, key string) *section {
	return &section{c: c, m: m, path: path, key: key, seen: map[string]bool{}}
}

// kpath returns the locator path of key k of s.
func (s *section) kpath(k string) string { return joinKey(s.path, k) }

// kname returns the name of key k of s as used in messages: "job.mode".
func (s *section) kname(k string) string {
	if s.key == "" {
		return toml.Key{k}.String()
	}
	return s.key + "." + toml.Key{k}.String()
}

func (s *section) prefix() string {
	if s.ctx == "" {
		return ""
	}
	return s.ctx + ": "
}

// errAt records an error about key k (named in the message) at path.
func (s *section) errAt(path, k string, err error, format string, args ...any) {
	s.c.add(path, err, s.prefix()+s.kname(k)+": "+fmt.Sprintf(format, args...))
}

// errf records an error about the value of key k at the position of k.
func (s *section) errf(k string, format string, args ...any) {
	s.errAt(s.kpath(k), k, nil, format, args...)
}

// missing records that the required key k is absent.
func (s *section) missing(k string) {
	s.c.add(s.path, nil, fmt.Sprintf("%smissing required key %q", s.prefix(), s.kname(k)))
}

// has reports whether key k is present (whatever its type).
func (s *section) has(k string) bool {
	_, ok := s.m[k]
	return ok
}

// get returns the value of k and marks k as known.
func (s *section) get(k string) (any, bool) {
	s.seen[k] = true
	v, ok := s.m[k]
	return v, ok
}

// finish reports every key of s that no check has read.
func (s *section) finish() {
	keys := make([]string, 0, len(s.m))
	for k := range s.m {
		if !s.seen[k] {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	known := make([]string, 0, len(s.seen)) // every key the checks read: the valid ones
	for k := range s.seen {
		known = append(known, k)
	}
	for _, k := range keys {
		msg := fmt.Sprintf("%sunknown key %q", s.prefix(), s.kname(k))
		if g := suggest(k, known); g != "" {
			msg += fmt.Sprintf(" (did you mean %q?)", s.kname(g))
		}
		s.c.add(s.kpath(k), nil, msg)
	}
}

// typeName names the TOML type of a decoded value.
func typeName(v any) string {
	switch v.(type) {
	case string:
		return "string"
	case int64:
		return "integer"
	case float64:
		return "float"
	case bool:
		return "boolean"
	case time.Time:
		return "date-time"
	case []any, []map[string]any:
		return "array"
	case map[string]any:
		return "table"
	}
	return fmt.Sprintf("%T", v)
}

// str returns the string value of k; ok is false when k is absent or not
// a string (which is reported).
func (s *section) str(k string) (v string, ok bool) {
	raw, present := s.get(k)
	if !present {
		return "", false
	}
	v, ok = raw.(string)
	if !ok {
		s.errf(k, "expected a string, got %s", typeName(raw))
	}
	return v, ok
}

// optional returns the string value of an optional key k; ok is false
// when k is absent, not a string or empty (reported as such, with when:
// the case in which to leave k out).
func (s *section) optional(k, when string) (v string, ok bool) {
	v, ok = s.str(k)
	if ok && v == "" {
		s.errf(k, "must not be empty (leave it out %s)", when)
		return "", false
	}
	return v, ok
}

// required returns the string value of k, reporting it when absent, of the
// wrong type or empty; it returns "" in those cases.
func (s *section) required(k string) string {
	if !s.has(k) {
		s.get(k)
		s.missing(k)
		return ""
	}
	v, ok := s.str(k)
	if ok && v == "" {
		s.errf(k, "must not be empty")
	}
	return v
}

// strs returns the list of strings at k; single accepts one string for a
// list of one. ok is false when k is absent or of the wrong type.
func (s *section) strs(k string, single bool) (out []string, ok bool) {
	raw, present := s.get(k)
	if !present {
		return nil, false
	}
	if v, isStr := raw.(string); isStr && single {
		return []string{v}, true
	}
	list, isList := raw.([]any)
	if !isList {
		want := "a list of strings"
		if single {
			want = "a string or a list of strings"
		}
		s.errf(k, "expected %s, got %s", want, typeName(raw))
		return nil, false
	}
	ok = true
	out = make([]string, 0, len(list))
	for i, e := range list {
		v, isStr := e.(string)
		if !isStr {
			s.errAt(joinIndex(s.kpath(k), i), k, nil, "expected a list of strings, element %d is %s", i+1, article(typeName(e)))
			ok = false
			continue
		}
		out = append(out, v)
	}
	return out, ok
}

func article(t string) string {
	if strings.ContainsAny(t[:1], "aeiou") {
		return "an " + t
	}
	return "a " + t
}

// boolean returns the boolean value of k; def when k is absent or not a
// boolean (which is reported).
func (s *section) boolean(k string, def bool) bool {
	raw, present := s.get(k)
	if !present {
		return def
	}
	v, ok := raw.(bool)
	if !ok {
		s.errf(k, "expected true or false, got %s", typeName(raw))
		return def
	}
	return v
}

// integer returns the integer value of k.
func (s *section) integer(k string) (int64, bool) {
	raw, present := s.get(k)
	if !present {
		return 0, false
	}
	v, ok := raw.(int64)
	if !ok {
		s.errf(k, "expected an integer, got %s", typeName(raw))
	}
	return v, ok
}

// oneOf returns the value of k, which must be one of allowed; def when k is
// absent, "" when it is invalid.
func (s *section) oneOf(k, def string, allowed ...string) string {
	if !s.has(k) {
		s.get(k)
		return def
	}
	v, ok := s.str(k)
	if !ok {
		return ""
	}
	for _, a := range allowed {
		if v == a {
			return v
		}
	}
	s.errf(k, "%q is not one of %s", v, strings.Join(allowed, ", "))
	return ""
}

// duration returns the duration at k: a string for time.ParseDuration,
// at least 0 and, when limit > 0, at most limit; def when absent.
func (s *section) duration(k string, def, limit time.Duration) time.Duration {
	raw, present := s.get(k)
	if !present {
		return def
	}
	v, ok := raw.(string)
	if !ok {
		s.errf(k, `expected a duration string like "20ms" or "5s", got %s`, typeName(raw))
		return def
	}
	d, err := time.ParseDuration(v)
	switch {
	case err != nil:
		s.errAt(s.kpath(k), k, err, `%q is not a duration (like "20ms", "5s", "1m30s")`, v)
	case d < 0:
		s.errf(k, "%q must not be negative", v)
	case limit > 0 && d > limit:
		s.errf(k, "%q is longer than the maximum %s", v, limit)
	default:
		return d
	}
	return def
}

// absPath returns the cleaned absolute path at k, or def when absent.
func (s *section) absPath(k, def string) string {
	if !s.has(k) {
		s.get(k)
		return def
	}
	v, ok := s.str(k)
	if !ok {
		return def
	}
	if err := checkAbs(v); err != nil {
		s.errf(k, "%v", err)
		return v
	}
	return cleanPath(v)
}

// hostPort checks the host:port at k.
func (s *section) hostPort(k, v string, emptyHost bool) {
	if err := checkHostPort(v, emptyHost); err != nil {
		s.errAt(s.kpath(k), k, err, "%v", err)
	}
}

// table returns key k as a table; ok is false when absent or not a table.
func (s *section) table(k string) (*section, bool) {
	raw, present := s.get(k)
	if !present {
		return nil, false
	}
	m, ok := raw.(map[string]any)
	if !ok {
		s.errf(k, "expected a table ([%s]), got %s", s.kname(k), typeName(raw))
		return nil, false
	}
	return s.c.section(m, s.kpath(k), s.kname(k)), true
}

// array returns key k as an array of tables ([[k]] or [{...}, ...]).
func (s *section) array(k string) []*section {
	raw, present := s.get(k)
	if !present {
		return nil
	}
	var out []*section
	switch list := raw.(type) {
	case []map[string]any:
		for i, m := range list {
			out = append(out, s.c.section(m, joinIndex(s.kpath(k), i), s.kname(k)))
		}
	case []any:
		for i, e := range list {
			m, ok := e.(map[string]any)
			if !ok {
				s.errAt(joinIndex(s.kpath(k), i), k, nil, "expected an array of tables ([[%s]]), element %d is %s", s.kname(k), i+1, article(typeName(e)))
				continue
			}
			out = append(out, s.c.section(m, joinIndex(s.kpath(k), i), s.kname(k)))
		}
	default:
		s.errf(k, "expected an array of tables ([[%s]]), got %s", s.kname(k), typeName(raw))
	}
	return out
}
