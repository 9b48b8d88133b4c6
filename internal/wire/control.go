package wire

import (
	"fmt"
	"math"
)

// Hello opens every control stream: who is speaking.
type Hello struct {
	Node  string `json:"node"`  // sender's node name
	Agent string `json:"agent"` // software version, informational
}

// Type implements Message.
func (*Hello) Type() Type { return TypeHello }

// Validate implements Message.
func (m *Hello) Validate() error {
	if err := checkName("node", m.Node); err != nil {
		return err
	}
	return checkText("agent", m.Agent, MaxNameLen)
}

// ResultResync is the Result state of a target that cannot use an
// incremental announcement (it does not hold its base): it asks for the
// complete index.
const ResultResync = "resync"

// ResultHeld is the Result state of a push target that an operator holds
// at an earlier generation (rollback --hold): it takes no new generation
// until resumed; Reason says where it is held.
const ResultHeld = "held"

// Result reports what a target did with an announced version.
type Result struct {
	Job        string `json:"job"`
	Version    uint64 `json:"version"`    // the announced version
	Generation uint64 `json:"generation"` // the target's generation number for it
	State      string `json:"state"`      // good, bad, rolled-back
	Reason     string `json:"reason,omitempty"`
	// Progress, on an "applying" Result, says how far the target got with
	// a generation that takes more than a second (sent about once a
	// second while it lasts).
	Progress *Progress `json:"progress,omitempty"`
}

// Progress is how far a target got with one generation: the phase it is
// in ("fetching" content from the source, "recording" the generation in
// its store, "applying" it to the tree), the files and bytes of that
// phase done and in all, and its estimate of the seconds the phase still
// takes (-1 while it has no estimate).
type Progress struct {
	Phase      string  `json:"phase"`
	Files      uint64  `json:"files"`
	FilesTotal uint64  `json:"files_total"`
	Bytes      uint64  `json:"bytes"`
	BytesTotal uint64  `json:"bytes_total"`
	ETA        float64 `json:"eta_s"`
}

// Progress phases.
const (
	PhaseFetching = "fetching"
	// PhaseRecording: the target records the generation in its store
	// before it applies it (a second or two at 100,000 files); files are
	// the changes recorded of those the generation makes, bytes 0/0.
	PhaseRecording = "recording"
	PhaseApplying  = "applying"
	// PhaseWaiting: the apply found no room on the target's file system
	// and waits for it; files and bytes are the inodes and bytes free
	// of those the apply needs (0/0 when it does not know), the ETA the
	// seconds until it tries again whatever the room.
	PhaseWaiting = "waiting"
)

// Validate checks a Progress: a known phase, done ≤ total, a finite ETA.
func (p *Progress) Validate() error {
	switch p.Phase {
	case PhaseFetching, PhaseRecording, PhaseApplying, PhaseWaiting:
	default:
		return fmt.Errorf("progress phase %q: want fetching, recording, applying or waiting", truncate(p.Phase, 40))
	}
	if p.Files > p.FilesTotal || p.Bytes > p.BytesTotal {
		return fmt.Errorf("progress: %d/%d files, %d/%d bytes: more done than in all", p.Files, p.FilesTotal, p.Bytes, p.BytesTotal)
	}
	if math.IsNaN(p.ETA) || math.IsInf(p.ETA, 0) || p.ETA < -1 {
		return fmt.Errorf("progress: eta %v", p.ETA)
	}
	return nil
}

// Type implements Message.
func (*Result) Type() Type { return TypeResult }

// Validate implements Message.
func (m *Result) Validate() error {
	if err := checkName("job", m.Job); err != nil {
		return err
	}
	switch m.State {
	case "good", "bad", "rolled-back", "applying", ResultResync, ResultHeld:
	default:
		return fmt.Errorf("state %q: want good, bad, rolled-back, applying, resync or held", truncate(m.State, 40))
	}
	if m.Progress != nil {
		if m.State != "applying" {
			return fmt.Errorf("progress on a %q result: only an applying one has progress", m.State)
		}
		if err := m.Progress.Validate(); err != nil {
			return err
		}
	}
	return checkText("reason", m.Reason, MaxReasonLen)
}

// Ping asks for a Pong; it measures round-trip time and liveness.
type Ping struct {
	Seq uint64 `json:"seq"`
}

// Type implements Message.
func (*Ping) Type() Type { return TypePing }

// Validate implements Message.
func (*Ping) Validate() error { return nil }

// Pong answers a Ping with its sequence number.
type Pong struct {
	Seq uint64 `json:"seq"`
}

// Type implements Message.
func (*Pong) Type() Type { return TypePong }

// Validate implements Message.
func (*Pong) Validate() error { return nil }

// State is a node's published state: its jobs' generations and its host's
// health. Peers keep the last one they received.
type State struct {
	Node     string `json:"node"`
	Healthy  bool   `json:"healthy"`
	Asterisk string `json:"asterisk,omitempty"` // "up", "down", or "" when not configured
	// AsteriskError says why Asterisk counts as down (e.g. "login failed").
	AsteriskError string `json:"asterisk_error,omitempty"`
	// What the node's Asterisk says of itself (when it is up).
	AsteriskVersion string     `json:"asterisk_version,omitempty"`
	AsteriskUptime  int64      `json:"asterisk_uptime_s,omitempty"`
	LastReload      int64      `json:"last_reload,omitempty"` // Unix seconds
	FullyBooted     bool       `json:"fully_booted,omitempty"`
	Channels        int        `json:"channels,omitempty"`
	Load1           float64    `json:"load1,omitempty"`
	Disks           []Disk     `json:"disks,omitempty"`
	Jobs            []JobState `json:"jobs,omitempty"`
	// Site and Vars are the sender's [node] site and [node.vars], sent
	// when one of its jobs has templates: what `pbxsync render --node`
	// on a peer shows that node's templates with.
	Site string            `json:"site,omitempty"`
	Vars map[string]string `json:"vars,omitempty"`
}

// Bounds of State.Vars.
const (
	MaxVars        = 1024
	MaxVarValueLen = 16 << 10
)

// Disk is the free space where a node writes (data_dir, job roots).
type Disk struct {
	Path      string `json:"path"`
	FreeBytes uint64 `json:"free_bytes"`
}

// JobState is one job's line in a State.
type JobState struct {
	Job        string `json:"job"`
	Generation uint64 `json:"generation"`
	Version    uint64 `json:"version"` // source version last applied
	State      string `json:"state"`
}

// Type implements Message.
func (*State) Type() Type { return TypeState }

// Validate implements Message.
func (m *State) Validate() error {
	if err := checkName("node", m.Node); err != nil {
		return err
	}
	if len(m.Jobs) > 4096 {
		return fmt.Errorf("jobs: %d entries", len(m.Jobs))
	}
	if len(m.Disks) > 4096 {
		return fmt.Errorf("disks: %d entries", len(m.Disks))
	}
	for _, d := range m.Disks {
		if err := checkText("disk path", d.Path, 4096); err != nil {
			return err
		}
	}
	for _, j := range m.Jobs {
		if err := checkName("job", j.Job); err != nil {
			return err
		}
		if err := checkText("state", j.State, 32); err != nil {
			return err
		}
	}
	if err := checkText("asterisk_error", m.AsteriskError, MaxReasonLen); err != nil {
		return err
	}
	if err := checkText("site", m.Site, MaxNameLen); err != nil {
		return err
	}
	if len(m.Vars) > MaxVars {
		return fmt.Errorf("vars: %d entries > %d", len(m.Vars), MaxVars)
	}
	for k, v := range m.Vars {
		if err := checkName("var", k); err != nil {
			return err
		}
		if err := checkText("var "+k, v, MaxVarValueLen); err != nil {
			return err
		}
	}
	if err := checkText("asterisk_version", m.AsteriskVersion, MaxNameLen); err != nil {
		return err
	}
	return checkText("asterisk", m.Asterisk, 32)
}

// Error ends a transfer stream with the reason it failed.
type Error struct {
	Message string `json:"message"`
}

// Type implements Message.
func (*Error) Type() Type { return TypeError }

// Validate implements Message.
func (m *Error) Validate() error { return checkText("message", m.Message, MaxReasonLen) }

// Error implements error.
func (m *Error) Error() string { return m.Message }
