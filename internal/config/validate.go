package config

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"pbxsync/internal/identity"
)

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
		cfg.Node = Node{DataDir: DefaultDataDir, LogLevel: DefaultLogLevel, MemoryLimit: DefaultMemoryLimit}
	}

	// Names a job may use: this node and every peer. When this node's name
	// could not be read, any name might be it: do not report names as
	// unknown then, the error on node.name says enough.
	names := map[string]bool{}
	if cfg.Node.Name != "" {
		names[cfg.Node.Name] = true
	}
	cfg.Peers = c.peers(top.array("peer"), cfg.Node)
	peerNames := map[string]bool{}
	for _, p := range cfg.Peers {
		if p.Name != "" {
			names[p.Name] = true
			peerNames[p.Name] = true
		}
	}
	known := func(name string) bool { return names[name] || cfg.Node.Name == "" }

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
		c.jobPath(s, j, cfg.Node.DataDir, c.absFile())
		cfg.Jobs = append(cfg.Jobs, j)
	}

	if ast, ok := top.table("asterisk"); ok {
		cfg.Asterisk = c.asterisk(ast)
	} else {
		cfg.Asterisk = Asterisk{Service: DefaultAsteriskService}
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

// node checks [node].
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
	n.HTTPCert = s.absPath("http_cert", "")
	n.HTTPKey = s.absPath("http_key", "")
	switch {
	case n.HTTPCert != "" && n.HTTPKey == "":
		s.errf("http_cert", "http_cert without http_key: give both (the certificate and its private key) or neither")
	case n.HTTPKey != "" && n.HTTPCert == "":
		s.errf("http_key", "http_key without http_cert: give both (the certificate and its private key) or neither")
	case n.HTTPCert != "" && n.HTTP == "":
		s.errf("http_cert", "http_cert without http: set http = \"host:port\" for the listener that serves TLS")
	}
	n.LogLevel = s.oneOf("log_level", DefaultLogLevel, "debug", "info", "warn", "error")
	n.Site, _ = s.optional("site", "when the node has no site")
	n.MemoryLimit = s.byteSize("memory_limit", DefaultMemoryLimit)
	if vs, ok := s.table("vars"); ok {
		n.Vars = c.vars(vs)
	}
	s.finish()
	return n
}

// peers checks every [[peer]]: keys, addresses, IDs, unique names and IDs.
func (c *checker) peers(list []*section, node Node) []Peer {
	var out []Peer
	firstName := map[string]int{}        // name → line of first
	firstID := map[identity.ID]string{}  // ID → name of the first peer with it
	firstIDLine := map[identity.ID]int{} // ID → its line
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
		if v, ok := s.optional("address", "for a peer that is never dialed: one that only dials in, as an origin behind a relay"); ok {
			p.Address = v
			s.hostPort("address", v, false)
		}
		p.Site, _ = s.optional("site", "when the peer is in this node's site")
		p.Relay = s.boolean("relay", false)
		if v := s.required("id"); v != "" {
			id, err := parseID(v)
			if err != nil {
				s.errAt(s.kpath("id"), "id", err, "%v", err)
			} else {
				p.ID = id
				if first, dup := firstID[id]; dup {
					s.errf("id", "duplicate id: peer %s at line %d has the same id", first, firstIDLine[id])
				} else {
					firstID[id] = strings.TrimPrefix(s.ctx, "peer ")
					firstIDLine[id] = c.line(s.kpath("id"))
				}
			}
		}
		s.finish()
		out = append(out, p)
	}
	return out
}

// job checks one [[job]] and its rules; node is this node's name.
func (c *checker) job(s *section, i int, node string, known func(string) bool) Job {
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
	j.Order = s.oneOf("order", OrderParallel, OrderParallel, OrderRolling, OrderRollingSites)
	j.Delta = s.oneOf("delta", DeltaAuto, DeltaAuto, DeltaAlways, DeltaNever)

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
	j.PreserveSUID = s.boolean("preserve_suid", false)
	j.Templates, _ = s.strs("templates", false)
	j.Windows, _ = s.strs("window", true)
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
		c.templates(s, j.Templates)
		for _, k := range []string{"dsn", "dsn_file", "tables"} {
			if s.has(k) {
				s.errf(k, "only postgres jobs take %s (this is a files job)", k)
			}
		}
	case TypePostgres:
		for _, k := range []string{"path", "include", "exclude", "preserve_suid", "templates"} {
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
				s.errAt(joinIndex(s.kpath(k), n), k, err, "%v", err)
			} else if j.Path != "" && strings.HasPrefix(g, strings.TrimSuffix(j.Path, "/")+"/") {
				s.errAt(joinIndex(s.kpath(k), n), k, nil, "pattern %q starts with the job path; patterns are relative to the job root (%q)", g, strings.TrimPrefix(g, strings.TrimSuffix(j.Path, "/")))
			}
		}
	}

	c.windows(s, j.Windows)
	c.members(s, &j, node, known, hasSource, targetsOK)
	j.Backup = c.backup(s, &j)
	j.Conflict = c.conflict(s, &j)

	for k, rs := range ruleSections {
		j.Rules = append(j.Rules, c.rule(rs, s.ctx, k))
	}
	s.finish()
	return j
}

// members checks source and targets against the mode and the known names.
func (c *checker) members(s *section, j *Job, node string, known func(string) bool, hasSource, targetsOK bool) {
	// Names in targets: each known, none twice.
	seen := map[string]bool{}
	for n, t := range j.Targets {
		at := joinIndex(s.kpath("targets"), n)
		switch {
		case t == "":
			s.errAt(at, "targets", nil, "node name must not be empty")
		case !known(t) && (j.Mode != ModePush || j.Source == node):
			// A push target talks only to the source: it need not pin the
			// other targets. The source and mesh members must know them all.
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
			case !known(j.Source):
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

// conflict checks the conflict policy of a mesh job: "newest" (the
// default) or "prefer:NODE" with NODE one of its members.
func (c *checker) conflict(s *section, j *Job) string {
	v, ok := s.str("conflict")
	if !ok {
		if j.Mode == ModeMesh {
			return ConflictNewest
		}
		return ""
	}
	if j.Mode != ModeMesh {
		s.errf("conflict", "only mesh jobs take conflict (this job's mode is %q)", j.Mode)
		return ""
	}
	switch {
	case v == ConflictNewest:
	case strings.HasPrefix(v, ConflictPrefer):
		n := strings.TrimPrefix(v, ConflictPrefer)
		if !slices.Contains(j.Targets, n) {
			s.errf("conflict", "%q: %q is not a member of this job (targets lists them)", v, n)
		}
	default:
		s.errf("conflict", "%q: want %q or %q", v, ConflictNewest, ConflictPrefer+"NODE")
	}
	return v
}

// rule checks one [[job.rule]] of the job named in jobCtx.
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
				s.errAt(at, "match", err, "%v", err)
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

// asterisk checks [asterisk].
func (c *checker) asterisk(s *section) Asterisk {
	a := Asterisk{}
	if v, ok := s.optional("ami", "for no Asterisk control"); ok {
		a.AMI = v
		s.hostPort("ami", v, false)
	}
	a.Username, _ = s.str("username")
	a.SecretFile = s.absPath("secret_file", "")
	a.Log = s.absPath("log", "") // "": the agent asks Asterisk where it logs
	a.Service = DefaultAsteriskService
	if v, ok := s.str("service"); ok {
		if !validUnit(v) {
			s.errf("service", "%q is not a systemd unit name (e.g. asterisk.service)", v)
		} else {
			a.Service = v
		}
	}
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

// hook checks one [[on_peer_down]] or [[on_peer_up]]; grace is its default.
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

// validUnit accepts systemd unit names: letters, digits, ":-_.\@" and a
// type suffix such as ".service".
func validUnit(u string) bool {
	if u == "" || len(u) > 256 || !strings.Contains(u, ".") || strings.HasPrefix(u, "-") {
		return false
	}
	for _, r := range u {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune(":-_.\\@", r)) {
			return false
		}
	}
	return true
}
