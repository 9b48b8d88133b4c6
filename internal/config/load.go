package config

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"sort"
	"strings"
	"time"

	"github.com/BurntSushi/toml"
)

// Defaults filled in by Load and Parse, and limits they check.
const (
	DefaultDataDir       = "/var/lib/pbxsync"
	DefaultLogLevel      = "info"
	DefaultKeep          = 20
	DefaultDebounce      = 20 * time.Millisecond
	DefaultCheckTimeout  = 30 * time.Second
	DefaultAsteriskLog   = "/var/log/asterisk/messages"
	DefaultHookTimeout   = 60 * time.Second
	DefaultPeerDownGrace = 5 * time.Second
	DefaultPeerUpGrace   = time.Duration(0)

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
	cfg.File = file
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
	for _, k := range keys {
		s.c.add(s.kpath(k), nil, fmt.Sprintf("%sunknown key %q", s.prefix(), s.kname(k)))
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

// config checks the whole document.
func (c *checker) config(raw map[string]any) *Config {
	top := c.section(raw, "", "")
	cfg := &Config{}

	if node, ok := top.table("node"); ok {
		cfg.Node = c.node(node)
	} else {
		if !top.has("node") {
			c.add("", nil, `missing required key "node.name"`)
			c.add("", nil, `missing required key "node.listen"`)
		}
		cfg.Node = Node{DataDir: DefaultDataDir, LogLevel: DefaultLogLevel}
	}

	// Names a job may use: this node and every peer.
	known := map[string]bool{}
	if cfg.Node.Name != "" {
		known[cfg.Node.Name] = true
	}
	cfg.Peers = c.peers(top.array("peer"), cfg.Node)
	peerNames := map[string]bool{}
	for _, p := range cfg.Peers {
		if p.Name != "" {
			known[p.Name] = true
			peerNames[p.Name] = true
		}
	}

	firstJob := map[string]int{} // name → line of the first job with it
	for i, s := range top.array("job") {
		j := c.job(s, i, cfg.Node.Name, known)
		if j.Name != "" {
			if line, dup := firstJob[j.Name]; dup {
				s.errf("name", "duplicate job %q (first defined at line %d)", j.Name, line)
			} else {
				firstJob[j.Name] = c.line(s.kpath("name"))
			}
		}
		cfg.Jobs = append(cfg.Jobs, j)
	}

	if ast, ok := top.table("asterisk"); ok {
		cfg.Asterisk = c.asterisk(ast)
	} else {
		cfg.Asterisk = Asterisk{Log: DefaultAsteriskLog}
	}

	for i, s := range top.array("on_peer_down") {
		cfg.OnPeerDown = append(cfg.OnPeerDown, c.hook(s, i, DefaultPeerDownGrace, cfg.Node.Name, peerNames))
	}
	for i, s := range top.array("on_peer_up") {
		cfg.OnPeerUp = append(cfg.OnPeerUp, c.hook(s, i, DefaultPeerUpGrace, cfg.Node.Name, peerNames))
	}
	top.finish()
	return cfg
}

func (c *checker) node(s *section) Node {
	n := Node{}
	n.Name = s.required("name")
	n.Listen = s.required("listen")
	if n.Listen != "" {
		s.hostPort("listen", n.Listen, true)
	}
	n.DataDir = s.absPath("data_dir", DefaultDataDir)
	if v, ok := s.str("http"); ok {
		n.HTTP = v
		s.hostPort("http", v, true)
	}
	n.LogLevel = s.oneOf("log_level", DefaultLogLevel, "debug", "info", "warn", "error")
	s.finish()
	return n
}

func (c *checker) peers(list []*section, node Node) []Peer {
	var out []Peer
	firstName := map[string]int{}   // name → line of first
	firstID := map[string]string{}  // ID → name of the first peer with it
	firstIDLine := map[string]int{} // ID → its line
	for i, s := range list {
		s.ctx = fmt.Sprintf("peer #%d", i+1)
		p := Peer{}
		p.Name = s.required("name")
		if p.Name != "" {
			s.ctx = fmt.Sprintf("peer %q", p.Name)
			switch line, dup := firstName[p.Name]; {
			case p.Name == node.Name:
				s.errf("name", "%q is the name of this node ([node] name); a peer must have a name of its own", p.Name)
			case dup:
				s.errf("name", "duplicate peer %q (first defined at line %d)", p.Name, line)
			default:
				firstName[p.Name] = c.line(s.kpath("name"))
			}
		}
		p.Address = s.required("address")
		if p.Address != "" {
			s.hostPort("address", p.Address, false)
		}
		if v := s.required("id"); v != "" {
			id, err := parseID(v)
			if err != nil {
				s.errAt(s.kpath("id"), "id", err, "%v", err)
			} else {
				p.ID = id
				key := id.String()
				if first, dup := firstID[key]; dup {
					s.errf("id", "duplicate id: peer %s at line %d has the same id", first, firstIDLine[key])
				} else {
					firstID[key] = strings.TrimPrefix(s.ctx, "peer ")
					firstIDLine[key] = c.line(s.kpath("id"))
				}
			}
		}
		s.finish()
		out = append(out, p)
	}
	return out
}

func (c *checker) job(s *section, i int, node string, known map[string]bool) Job {
	s.ctx = fmt.Sprintf("job #%d", i+1)
	j := Job{Line: c.line(s.path)}
	j.Name = s.required("name")
	if j.Name != "" {
		s.ctx = fmt.Sprintf("job %q", j.Name)
		if !validJobName(j.Name) {
			s.errf("name", "%q may only contain letters, digits, '_', '.' and '-'", j.Name)
		}
	}
	j.Type = s.oneOf("type", TypeFiles, TypeFiles, TypePostgres)
	j.Mode = s.oneOf("mode", ModePush, ModePush, ModeMesh)
	j.Order = s.oneOf("order", OrderParallel, OrderParallel, OrderRolling)

	path, hasPath := s.str("path")
	j.Include, _ = s.strs("include", false)
	j.Exclude, _ = s.strs("exclude", false)
	source, hasSource := s.str("source")
	targets, targetsOK := s.strs("targets", false)
	j.Source, j.Targets = source, targets

	j.Keep = DefaultKeep
	if v, ok := s.integer("keep"); ok {
		switch {
		case v < MinKeep:
			s.errf("keep", "must be at least %d, got %d", MinKeep, v)
		case int64(int(v)) != v:
			s.errf("keep", "%d is too large", v)
		default:
			j.Keep = int(v)
		}
	}
	j.Debounce = s.duration("debounce", DefaultDebounce, MaxDebounce)
	j.Check, _ = s.str("check")
	j.CheckTimeout = s.duration("check_timeout", DefaultCheckTimeout, 0)
	j.DSN, _ = s.str("dsn")
	dsnFile, hasDSNFile := s.str("dsn_file")
	tables, tablesOK := s.strs("tables", false)
	j.Tables = tables
	ruleSections := s.array("rule")

	// Type-specific keys.
	switch j.Type {
	case TypeFiles:
		if !s.has("path") {
			s.missing("path")
		} else if hasPath {
			if err := checkAbs(path); err != nil {
				s.errf("path", "%v", err)
			} else {
				j.Path = cleanPath(path)
			}
		}
		for _, k := range []string{"dsn", "dsn_file", "tables"} {
			if s.has(k) {
				s.errf(k, "only postgres jobs take %s (this is a files job)", k)
			}
		}
	case TypePostgres:
		for _, k := range []string{"path", "include", "exclude"} {
			if s.has(k) {
				s.errf(k, "only files jobs take %s (this is a postgres job)", k)
			}
		}
		switch {
		case s.has("dsn") && s.has("dsn_file"):
			s.errf("dsn_file", "set either dsn or dsn_file, not both")
		case !s.has("dsn") && !s.has("dsn_file"):
			s.c.add(s.path, nil, fmt.Sprintf("%smissing required key %q or %q", s.prefix(), s.kname("dsn"), s.kname("dsn_file")))
		case s.has("dsn") && j.DSN == "":
			s.errf("dsn", "must not be empty")
		}
		if hasDSNFile {
			if err := checkAbs(dsnFile); err != nil {
				s.errf("dsn_file", "%v", err)
			} else {
				j.DSNFile = cleanPath(dsnFile)
			}
		}
		switch {
		case !s.has("tables"):
			s.missing("tables")
		case tablesOK && len(tables) == 0:
			s.errf("tables", "must name at least one table")
		case tablesOK:
			first := map[string]bool{}
			for k, t := range tables {
				switch {
				case strings.TrimSpace(t) == "":
					s.errAt(joinIndex(s.kpath("tables"), k), "tables", nil, "table name must not be empty")
				case first[t]:
					s.errAt(joinIndex(s.kpath("tables"), k), "tables", nil, "duplicate table %q", t)
				}
				first[t] = true
			}
		}
	}

	for _, k := range []string{"include", "exclude"} {
		list := j.Include
		if k == "exclude" {
			list = j.Exclude
		}
		for n, g := range list {
			if err := checkGlob(g); err != nil {
				s.errAt(joinIndex(s.kpath(k), n), k, err, "bad pattern %q: %v", g, err)
			}
		}
	}

	c.members(s, &j, node, known, hasSource, targetsOK)

	for k, rs := range ruleSections {
		j.Rules = append(j.Rules, c.rule(rs, s.ctx, k))
	}
	s.finish()
	return j
}

// members checks source and targets against the mode and the known names.
func (c *checker) members(s *section, j *Job, node string, known map[string]bool, hasSource, targetsOK bool) {
	// Names in targets: each known, none twice.
	seen := map[string]bool{}
	for n, t := range j.Targets {
		at := joinIndex(s.kpath("targets"), n)
		switch {
		case t == "":
			s.errAt(at, "targets", nil, "node name must not be empty")
		case !known[t]:
			s.errAt(at, "targets", nil, "unknown peer %q (not this node and not a [[peer]])", t)
		case seen[t]:
			s.errAt(at, "targets", nil, "duplicate target %q", t)
		case j.Mode == ModePush && t == j.Source:
			s.errAt(at, "targets", nil, "%q is the source of this push job; it cannot also be a target", t)
		}
		seen[t] = true
	}
	hasTargets := s.has("targets")
	partAt := s.path
	if hasTargets {
		partAt = s.kpath("targets")
	}
	switch j.Mode {
	case ModePush:
		if !s.has("source") {
			s.missing("source")
		} else if hasSource {
			switch {
			case j.Source == "":
				s.errf("source", "must not be empty")
			case !known[j.Source]:
				s.errf("source", "unknown peer %q (not this node and not a [[peer]])", j.Source)
			}
		}
		switch {
		case !hasTargets:
			s.missing("targets")
		case targetsOK && len(j.Targets) == 0:
			s.errf("targets", "a push job needs at least one target")
		}
		if hasSource && j.Source != "" && targetsOK && len(j.Targets) > 0 && node != "" &&
			j.Source != node && !seen[node] {
			c.add(partAt, nil, fmt.Sprintf("%sthis node (%q) takes no part in job %q: it is neither its source nor one of its targets", s.prefix(), node, j.Name))
		}
	case ModeMesh:
		if s.has("source") {
			s.errf("source", "a mesh job has no source (targets lists its members)")
		}
		switch {
		case !hasTargets:
			s.missing("targets")
		case targetsOK && len(seen) < 2:
			s.errf("targets", "a mesh job needs at least 2 members, including this node")
		case targetsOK && node != "" && !seen[node]:
			c.add(partAt, nil, fmt.Sprintf("%sthis node (%q) takes no part in job %q: it is not one of its targets", s.prefix(), node, j.Name))
		}
	}
}

func (c *checker) rule(s *section, jobCtx string, k int) Rule {
	s.ctx = fmt.Sprintf("%s rule #%d", jobCtx, k+1)
	r := Rule{Line: c.line(s.path)}
	if !s.has("match") {
		s.get("match")
		s.missing("match")
	} else if match, ok := s.strs("match", true); ok {
		r.Match = match
		if len(match) == 0 {
			s.errf("match", "must name at least one pattern")
		}
		_, single := s.m["match"].(string)
		for n, g := range match {
			at := joinIndex(s.kpath("match"), n)
			if single {
				at = s.kpath("match")
			}
			if err := checkGlob(g); err != nil {
				s.errAt(at, "match", err, "bad pattern %q: %v", g, err)
			}
		}
	}
	r.Action, _ = s.str("action")
	r.Check, _ = s.str("check")
	r.When, _ = s.str("when")
	for _, k := range []string{"action", "check", "when"} {
		if v, isStr := s.m[k].(string); isStr && strings.TrimSpace(v) == "" {
			s.errf(k, "must not be empty")
		}
	}
	if !s.has("action") && !s.has("check") {
		s.c.add(s.path, nil, fmt.Sprintf("%s%s: needs an %q or a %q (or both)", s.prefix(), s.key, "action", "check"))
	}
	s.finish()
	return r
}

func (c *checker) asterisk(s *section) Asterisk {
	a := Asterisk{}
	if v, ok := s.str("ami"); ok {
		a.AMI = v
		if v == "" {
			s.errf("ami", "must not be empty (leave it out for no Asterisk control)")
		} else {
			s.hostPort("ami", v, false)
		}
	}
	a.Username, _ = s.str("username")
	a.SecretFile = s.absPath("secret_file", "")
	a.Log = s.absPath("log", DefaultAsteriskLog)
	if a.AMI != "" {
		for _, k := range []string{"username", "secret_file"} {
			if !s.has(k) {
				s.c.add(s.path, nil, fmt.Sprintf("missing required key %q (needed with %s)", s.kname(k), s.kname("ami")))
			}
		}
		if s.has("username") && a.Username == "" {
			if _, isStr := s.m["username"].(string); isStr {
				s.errf("username", "must not be empty")
			}
		}
	}
	s.finish()
	return a
}

func (c *checker) hook(s *section, i int, grace time.Duration, node string, peers map[string]bool) PeerHook {
	s.ctx = fmt.Sprintf("%s #%d", s.key, i+1)
	h := PeerHook{}
	h.Peer = s.required("peer")
	switch {
	case h.Peer == "":
	case h.Peer == node:
		s.errf("peer", "%q is this node, not a peer", h.Peer)
	case !peers[h.Peer]:
		s.errf("peer", "unknown peer %q (no [[peer]] has that name)", h.Peer)
	}
	h.Grace = s.duration("grace", grace, 0)
	h.Command = s.required("command")
	h.Timeout = s.duration("timeout", DefaultHookTimeout, 0)
	s.finish()
	return h
}
