package remotemon

import (
	"time"

	"pbxsync/internal/identity"
	"pbxsync/internal/wire"
)

// Peer is a configured peer: a name, an address to dial and a pinned ID.
type Peer struct {
	Name    string
	Address string // host:port (UDP); empty: never dialed, accepted when it dials in
	ID      identity.ID
}

// PeerStatus is what the monitor knows about one peer right now.
type PeerStatus struct {
	Name          string        `json:"name"`
	ID            string        `json:"id"`
	Address       string        `json:"address"`
	Connected     bool          `json:"connected"`
	RTT           time.Duration `json:"-"`
	RTTMillis     float64       `json:"rtt_ms"`
	LastSeen      time.Time     `json:"last_seen"`
	DownSince     time.Time     `json:"down_since,omitzero"` // when it was last seen up (or this agent started); zero while connected
	Connections   int           `json:"connections"`
	BytesSent     uint64        `json:"bytes_sent"`
	BytesReceived uint64        `json:"bytes_received"`
	LastError     string        `json:"last_error,omitempty"`
	// Slow is set while the peer takes nothing from its control stream
	// although frames wait for it (since SlowSince); a peer that stays so
	// for StallAfter is disconnected. QueuedFrames and QueuedBytes are
	// what waits for it.
	Slow         bool        `json:"slow,omitempty"`
	SlowSince    time.Time   `json:"slow_since,omitzero"`
	QueuedFrames int         `json:"queued_frames,omitempty"`
	QueuedBytes  int         `json:"queued_bytes,omitempty"`
	Traffic      Traffic     `json:"content"`         // job content exchanged with the peer
	State        *wire.State `json:"state,omitempty"` // what the peer last published about itself
	StateTime    time.Time   `json:"state_time,omitzero"`
}

// Traffic counts job content exchanged with a peer: logical bytes (file
// sizes) and the bytes that went on the wire for them (compressed or
// delta-encoded).
type Traffic struct {
	LogicalSent     uint64 `json:"logical_sent"`
	ContentSent     uint64 `json:"wire_sent"`
	LogicalReceived uint64 `json:"logical_received"`
	ContentReceived uint64 `json:"wire_received"`
}

func (t *Traffic) add(d Traffic) {
	t.LogicalSent += d.LogicalSent
	t.ContentSent += d.ContentSent
	t.LogicalReceived += d.LogicalReceived
	t.ContentReceived += d.ContentReceived
}
