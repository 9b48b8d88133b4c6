package config

import (
	"time"

	"pbxsync/internal/identity"
)

// Config is one host's pbxsync configuration, loaded from TOML by Load.
// Every optional field holds its default after Load.
type Config struct {
	File       string     // the path it was loaded from
	Node       Node       // [node]
	Peers      []Peer     // [[peer]]
	Jobs       []Job      // [[job]]
	Asterisk   Asterisk   // [asterisk]; when absent only Service (its default) is set
	OnPeerDown []PeerHook // [[on_peer_down]]
	OnPeerUp   []PeerHook // [[on_peer_up]]

	loc *locator // positions of the keys in File, for ErrorAt
}

// Node is the [node] table: who this host is and where it listens.
type Node struct {
	Name     string // required; unique in the federation
	Listen   string // required host:port (UDP) for QUIC
	DataDir  string // absolute; default /var/lib/pbxsync
	HTTP     string // optional host:port for /healthz, /metrics, the dashboard and /api/v1
	HTTPCert string // optional absolute path: with HTTPKey, HTTP serves TLS (both or neither)
	HTTPKey  string // optional absolute path of HTTPCert's private key
	LogLevel string // debug|info|warn|error; default info
	Site     string // optional data centre of this node; templates see it as .Node.Site
	// MemoryLimit is the agent's soft memory limit in bytes (Go's
	// runtime/debug.SetMemoryLimit); 0: none. Default DefaultMemoryLimit.
	MemoryLimit int64
	// Vars are this host's own values ([node.vars]), which templates see
	// as .Vars.KEY; numbers and booleans are kept as their TOML text.
	Vars map[string]string
}

// Peer is one [[peer]]: another node, pinned by its ID.
type Peer struct {
	Name    string      // required, unique, not the node's own name
	Address string      // host:port (UDP); empty: never dialed, only accepted when it dials in
	ID      identity.ID // required; parsed and check-digit verified
	// Site is the peer's data centre; empty means this node's site
	// (everyone in one site). Use Config.SiteOf for the effective value.
	Site string
	// Relay prefers this peer as the relay of its site when a push job
	// of this node sends to that site from another one.
	Relay bool
}

// SiteOf returns the site of name (this node or a peer): the peer's own
// site when it has one, else this node's site; "" when sites are unused.
func (c *Config) SiteOf(name string) string {
	for _, p := range c.Peers {
		if p.Name == name && p.Site != "" {
			return p.Site
		}
	}
	return c.Node.Site
}

// Job types and modes.
const (
	TypeFiles    = "files"
	TypePostgres = "postgres"

	ModePush = "push"
	ModeMesh = "mesh"

	// ConflictNewest and ConflictPrefer (followed by a member's name) are
	// the conflict policies of a mesh job.
	ConflictNewest = "newest"
	ConflictPrefer = "prefer:"

	OrderParallel = "parallel"
	OrderRolling  = "rolling"
	// OrderRollingSites rolls out one site at a time: the first host of
	// the site (in targets) alone, then the rest of it, then the next site.
	OrderRollingSites = "rolling-sites"

	// DeltaAuto sends a delta for every file of DeltaMinSize or more, on
	// every link (a LAN as well as a WAN), and compressed whole content for
	// smaller files.
	DeltaAuto   = "auto"
	DeltaAlways = "always"
	DeltaNever  = "never"
)

// DeltaMinSize is the threshold of delta = "auto", measured with
// BenchmarkDeltaThreshold (delta/threshold_test.go) on one-line edits of
// dialplans: from 2 KiB on, the delta (~100 bytes) is under a quarter of
// the zstd frame the store holds and costs well under a millisecond to
// encode (the block match ends the search); below it the two differ by a
// few hundred bytes, and the dictionary and zstd candidates an encoder
// must try there cost milliseconds.
const DeltaMinSize = 2 << 10

// Job is one [[job]]: one tree of files or one set of tables, synced between peers.
type Job struct {
	Name         string        // required, unique; [A-Za-z0-9_.-]+
	Type         string        // files|postgres; default files
	Path         string        // files: required, absolute job root
	Include      []string      // files: globs relative to the root; default all
	Exclude      []string      // files: globs relative to the root
	Mode         string        // push|mesh; default push
	Source       string        // push: required node name (this node or a peer)
	Targets      []string      // push: node names (this node or peers); mesh: members
	Order        string        // parallel|rolling|rolling-sites; default parallel
	Conflict     string        // mesh: newest|prefer:NODE; default newest
	Delta        string        // auto|always|never: when to send deltas; default auto
	Keep         int           // generations kept in the store; default 20, min 2
	Debounce     time.Duration // file events are gathered this long; default 20ms
	Check        string        // optional job-wide check command
	CheckTimeout time.Duration // per check command; default 30s
	Rules        []Rule        // [[job.rule]]
	// PreserveSUID keeps setuid and setgid bits of files that come from a
	// peer; by default a target drops them (a pushed setuid binary is a
	// privilege escalation). Default false.
	PreserveSUID bool
	// Templates are globs of files that render locally: a matching file
	// X.tmpl is synced like any other and rendered on every member to X
	// (see internal/tmpl); X itself is not synced. Files jobs only.
	Templates []string
	// Windows are the times of day (local time) in which changes are sent
	// and applied; empty: at once. Changes are recorded as generations at
	// once either way (see internal/window).
	Windows []string
	Backup  Backup // optional scheduled backups; Every is 0 when not set
	Line    int    // line of the job in Config.File (its [[job]] header); 0 when unknown

	// postgres jobs
	DSN     string   // connection string; secret, never logged
	DSNFile string   // file holding the DSN (alternative to DSN)
	Tables  []string // tables to sync; keys come from each primary key
}

// Rule is one [[job.rule]]: which changed items trigger which action and check.
type Rule struct {
	Match  []string // globs over changed paths (relative to the job root); required
	Action string   // optional: e.g. "reload res_pjsip.so", "restart", "command core reload", "shell ..."
	Check  string   // optional shell command run in the job root; exit 0 passes
	When   string   // optional condition on host state, e.g. "no-channels"
	Line   int      // line of the rule in Config.File (its [[job.rule]] header); 0 when unknown
}

// Asterisk is the [asterisk] table: how to reach the local Asterisk over AMI.
type Asterisk struct {
	AMI        string // host:port of the manager interface; empty: no Asterisk control
	Username   string // AMI user
	SecretFile string // absolute path of a file holding the AMI secret; never logged
	Log        string // Asterisk log read by log checks; "": ask Asterisk over AMI (core show settings, logger show channels)
	Service    string // systemd unit for "service" actions; default asterisk.service
}

// PeerHook is one [[on_peer_down]] or [[on_peer_up]] entry.
type PeerHook struct {
	Peer    string        // required peer name
	Grace   time.Duration // wait this long before acting; default 0 (down: 5s)
	Command string        // required shell command
	Timeout time.Duration // default 60s
}

// PeerByName returns the peer called name.
func (c *Config) PeerByName(name string) (Peer, bool) {
	for _, p := range c.Peers {
		if p.Name == name {
			return p, true
		}
	}
	return Peer{}, false
}

// JobByName returns the job called name.
func (c *Config) JobByName(name string) (*Job, bool) {
	for i := range c.Jobs {
		if c.Jobs[i].Name == name {
			return &c.Jobs[i], true
		}
	}
	return nil, false
}

// Members returns every node name that takes part in the job: the source
// (push) and the targets.
func (j *Job) Members() []string {
	out := []string{}
	if j.Source != "" {
		out = append(out, j.Source)
	}
	for _, t := range j.Targets {
		if t != j.Source {
			out = append(out, t)
		}
	}
	return out
}
