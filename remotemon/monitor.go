package remotemon

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sort"
	"sync"
	"time"

	"github.com/quic-go/quic-go"

	"pbxsync/internal/identity"
	"pbxsync/internal/wire"
)

// Handler receives what peers send. Its methods are called from the
// monitor's goroutines and must not block for long.
type Handler interface {
	// HandleMessage gets every control message other than Hello, Ping and Pong.
	HandleMessage(peer string, m wire.Message)
	// HandleStream gets a transfer stream opened by peer, with its first message.
	// The handler owns s and must close it.
	HandleStream(ctx context.Context, peer string, first wire.Message, s *Stream)
	// PeerChanged reports a peer coming up (first live connection) or going
	// down (last connection lost).
	PeerChanged(peer string, up bool)
}

// Gatekeeper, when the Handler implements it, decides for every message a
// peer sends (and the first frame of every stream it opens) whether its body
// is read at all: t is its type, job the job it names ("" for messages that
// name none). A refused message is read off the stream undecoded, counted
// and logged (rate-limited), and the connection goes on.
type Gatekeeper interface {
	Allow(peer string, t wire.Type, job string) error
}

// Bounds on what one peer may hold open.
const (
	// maxConnsPerPeer bounds the live connections of one peer; a newer
	// one closes the oldest.
	maxConnsPerPeer = 4
	// maxRetiredRuns is how many replaced runs of a peer's agent are
	// remembered to tell two agents with one key from a restart
	maxRetiredRuns = 4
	// maxIncomingStreams bounds the transfer streams a peer may have open
	// on one connection.
	maxIncomingStreams = 64
)

// Options configure a Monitor. Zero durations take the defaults.
type Options struct {
	Node     string             // this node's name
	Listen   string             // host:port to bind (UDP)
	Identity *identity.Identity // this node's key and certificate
	Peers    []Peer
	Handler  Handler
	Log      *slog.Logger
	Agent    string // software version sent in Hello

	PingInterval time.Duration // default 500ms
	DeadAfter    time.Duration // no frame for this long closes a connection; default 2.5s
	MaxBackoff   time.Duration // default 1s
	// RefusalWindow rate-limits the log of refused handshakes: one line
	// per remote host and window, then a summary of how many were not
	// logged; default DefaultRefusalWindow.
	RefusalWindow time.Duration
	// MaxQueue bounds the bytes queued for one connection's control
	// stream (default DefaultMaxQueue); SlowAfter and StallAfter are how
	// long a peer may take nothing from it before it is reported slow
	// and disconnected (defaults DefaultSlowAfter, DefaultStallAfter).
	MaxQueue   int
	SlowAfter  time.Duration
	StallAfter time.Duration
}

// ErrNotConnected is returned when a peer has no live connection.
var ErrNotConnected = errors.New("peer not connected")

// Monitor owns the QUIC endpoint and the state of every peer.
type Monitor struct {
	opts  Options
	ident *identity.Identity
	// cert is what this run presents: the node's key in a certificate
	// made at New, so that peers see a restart (identity.RunCertificate)
	cert    tls.Certificate
	log     *slog.Logger
	codec   *wire.Codec
	handler Handler
	udp     net.PacketConn
	tr      *quic.Transport
	qconf   *quic.Config

	mu      sync.Mutex
	peers   map[string]*peerState
	byID    map[identity.ID]string
	runCtx  context.Context
	eventMu sync.Mutex // serializes PeerChanged calls
	refused *refusals  // rate limit of the refused-handshake log
}

type peerState struct {
	cfg        Peer
	conns      []*conn
	retired    []string // the last runs of its agent whose connections a newer run's ended (conn.run)
	lastSeen   time.Time
	downSince  time.Time // when its last connection ended (or the monitor started); zero while connected
	rtt        time.Duration
	closedSent uint64
	closedRecv uint64
	lastErr    string
	loggedErr  string
	loggedAt   time.Time
	cancelDial context.CancelFunc
	state      *wire.State
	stateTime  time.Time
	traffic    Traffic
}

// New binds the UDP socket and returns a Monitor; Run starts it.
func New(opts Options) (*Monitor, error) {
	if opts.PingInterval <= 0 {
		opts.PingInterval = 500 * time.Millisecond
	}
	if opts.DeadAfter <= 0 {
		opts.DeadAfter = 2500 * time.Millisecond
	}
	if opts.MaxBackoff <= 0 {
		opts.MaxBackoff = time.Second
	}
	if opts.MaxQueue <= 0 {
		opts.MaxQueue = DefaultMaxQueue
	}
	if opts.SlowAfter <= 0 {
		opts.SlowAfter = DefaultSlowAfter
	}
	if opts.StallAfter <= 0 {
		opts.StallAfter = DefaultStallAfter
	}
	if opts.Log == nil {
		opts.Log = slog.New(slog.DiscardHandler)
	}
	cert, err := opts.Identity.RunCertificate()
	if err != nil {
		return nil, err
	}
	codec, err := wire.NewCodec()
	if err != nil {
		return nil, err
	}
	udp, err := net.ListenPacket("udp", opts.Listen)
	if err != nil {
		codec.Close()
		return nil, fmt.Errorf("listen on %s (UDP): %w", opts.Listen, err)
	}
	m := &Monitor{
		opts:    opts,
		ident:   opts.Identity,
		cert:    cert,
		log:     opts.Log.With("component", "remotemon"),
		codec:   codec,
		handler: opts.Handler,
		udp:     udp,
		peers:   map[string]*peerState{},
		byID:    map[identity.ID]string{},
		refused: newRefusals(opts.RefusalWindow),
		qconf: &quic.Config{
			HandshakeIdleTimeout: 2 * time.Second,
			MaxIdleTimeout:       opts.DeadAfter + time.Second,
			// the pings keep a connection busy; QUIC's own keep-alive
			// PINGs are for when they stop (a full send queue), not an
			// extra packet every PingInterval
			KeepAlivePeriod:    opts.DeadAfter / 2,
			MaxIncomingStreams: maxIncomingStreams,
		},
	}
	m.tr = &quic.Transport{Conn: udp, StatelessResetKey: resetKey(opts.Identity, m.log)}
	for _, p := range opts.Peers {
		m.peers[p.Name] = &peerState{cfg: p, downSince: time.Now()}
		m.byID[p.ID] = p.Name
	}
	return m, nil
}

// Addr returns the bound UDP address.
func (m *Monitor) Addr() net.Addr { return m.udp.LocalAddr() }

// Codec returns the frame codec shared by all connections.
func (m *Monitor) Codec() *wire.Codec { return m.codec }

// Run listens, dials every peer and serves connections until ctx is done.
func (m *Monitor) Run(ctx context.Context) error {
	ln, err := m.tr.Listen(m.serverTLS(), m.qconf)
	if err != nil {
		return fmt.Errorf("quic listen on %s: %w", m.opts.Listen, err)
	}
	m.mu.Lock()
	m.runCtx = ctx
	for name, ps := range m.peers {
		m.startDialerLocked(ctx, name, ps)
	}
	m.mu.Unlock()
	m.log.Info("listening", "addr", m.udp.LocalAddr().String(), "node_id", m.ident.ID.String())

	var wg sync.WaitGroup
	wg.Add(2)
	go func() {
		defer wg.Done()
		m.refusalSummaries(ctx.Done())
	}()
	go func() {
		defer wg.Done()
		for {
			qc, err := ln.Accept(ctx)
			if err != nil {
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				m.serveInbound(ctx, qc)
			}()
		}
	}()
	<-ctx.Done()
	ln.Close()
	m.mu.Lock()
	for _, ps := range m.peers {
		for _, c := range ps.conns {
			c.qc.CloseWithError(0, "shutting down")
		}
	}
	m.mu.Unlock()
	wg.Wait()
	m.tr.Close()
	m.udp.Close()
	m.codec.Close()
	return nil
}

// SetPeers replaces the peer list (config reload): new peers are dialed,
// removed peers and peers whose ID or address changed are disconnected.
func (m *Monitor) SetPeers(peers []Peer) {
	m.mu.Lock()
	defer m.mu.Unlock()
	keep := map[string]bool{}
	for _, p := range peers {
		keep[p.Name] = true
		ps, ok := m.peers[p.Name]
		if ok && ps.cfg == p {
			continue
		}
		if ok {
			m.dropPeerLocked(ps)
		}
		ps = &peerState{cfg: p, downSince: time.Now()}
		m.peers[p.Name] = ps
		if m.runCtx != nil {
			m.startDialerLocked(m.runCtx, p.Name, ps)
		}
	}
	for name, ps := range m.peers {
		if !keep[name] {
			m.dropPeerLocked(ps)
			delete(m.peers, name)
		}
	}
	m.byID = map[identity.ID]string{}
	for _, p := range peers {
		m.byID[p.ID] = p.Name
	}
}

func (m *Monitor) dropPeerLocked(ps *peerState) {
	if ps.cancelDial != nil {
		ps.cancelDial()
	}
	for _, c := range ps.conns {
		c.qc.CloseWithError(0, "peer removed from config")
	}
}

func (m *Monitor) peerByID(id identity.ID) (Peer, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	name, ok := m.byID[id]
	if !ok {
		return Peer{}, false
	}
	return m.peers[name].cfg, true
}

// Status returns the state of every configured peer, sorted by name.
func (m *Monitor) Status() []PeerStatus {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]PeerStatus, 0, len(m.peers))
	for name, ps := range m.peers {
		st := PeerStatus{Name: name, ID: ps.cfg.ID.String(), Address: ps.cfg.Address, Connected: len(ps.conns) > 0,
			RTT: ps.rtt, LastSeen: ps.lastSeen, Connections: len(ps.conns), BytesSent: ps.closedSent, BytesReceived: ps.closedRecv, LastError: ps.lastErr,
			State: ps.state, StateTime: ps.stateTime, Traffic: ps.traffic}
		if len(ps.conns) == 0 {
			st.DownSince = ps.downSince
		}
		st.RTTMillis = float64(ps.rtt.Microseconds()) / 1000
		now := time.Now()
		for _, c := range ps.conns {
			cs := c.qc.ConnectionStats()
			st.BytesSent += cs.BytesSent
			st.BytesReceived += cs.BytesReceived
			frames, bytes := c.q.queued()
			st.QueuedFrames += frames
			st.QueuedBytes += bytes
			if slow, since := c.q.slow(now, m.opts.SlowAfter); slow && (st.SlowSince.IsZero() || since.Before(st.SlowSince)) {
				st.Slow, st.SlowSince = true, since
			}
		}
		out = append(out, st)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// AddTraffic adds to the content counters of peer.
func (m *Monitor) AddTraffic(peer string, d Traffic) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if ps, ok := m.peers[peer]; ok {
		ps.traffic.add(d)
	}
}

// RTT returns the last measured round-trip time to peer, 0 when unknown.
func (m *Monitor) RTT(peer string) time.Duration {
	m.mu.Lock()
	defer m.mu.Unlock()
	if ps, ok := m.peers[peer]; ok {
		return ps.rtt
	}
	return 0
}

// PeerState returns what peer last published about itself, or nil.
func (m *Monitor) PeerState(peer string) *wire.State {
	m.mu.Lock()
	defer m.mu.Unlock()
	if ps, ok := m.peers[peer]; ok {
		return ps.state
	}
	return nil
}

// Broadcast sends msg to every connected peer and returns how many got it.
func (m *Monitor) Broadcast(msg wire.Message) int {
	n := 0
	for _, st := range m.Status() {
		if st.Connected && m.Send(st.Name, msg) == nil {
			n++
		}
	}
	return n
}

// Connected reports whether peer has a live connection.
func (m *Monitor) Connected(peer string) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	ps, ok := m.peers[peer]
	return ok && len(ps.conns) > 0
}

// Send queues m for the control stream of peer's most recent connection
// and returns at once: a peer that does not read never blocks the caller.
// When that connection's queue is full the message is dropped and the error
// wraps ErrPeerSlow.
func (m *Monitor) Send(peer string, msg wire.Message) error {
	c := m.newestConn(peer)
	if c == nil {
		return fmt.Errorf("send %s to %s: %w", msg.Type(), peer, ErrNotConnected)
	}
	if err := c.enqueue(m.codec, msg); err != nil {
		return fmt.Errorf("send %s to %s: %w", msg.Type(), peer, err)
	}
	return nil
}

// OpenStream opens a transfer stream to peer on its most recent connection.
func (m *Monitor) OpenStream(ctx context.Context, peer string) (*Stream, error) {
	c := m.newestConn(peer)
	if c == nil {
		return nil, fmt.Errorf("open stream to %s: %w", peer, ErrNotConnected)
	}
	s, err := c.qc.OpenStreamSync(ctx)
	if err != nil {
		return nil, fmt.Errorf("open stream to %s: %w", peer, err)
	}
	return &Stream{s: s, codec: m.codec}, nil
}

func (m *Monitor) newestConn(peer string) *conn {
	m.mu.Lock()
	defer m.mu.Unlock()
	ps, ok := m.peers[peer]
	if !ok || len(ps.conns) == 0 {
		return nil
	}
	return ps.conns[len(ps.conns)-1]
}

// gate returns the Gate of peer's frames, nil when the handler keeps no
// gate.
func (m *Monitor) gate(peer string) wire.Gate {
	g, ok := m.handler.(Gatekeeper)
	if !ok {
		return nil
	}
	return func(t wire.Type, job string) error { return g.Allow(peer, t, job) }
}

// refusedMessage logs a message refused by the gate, at most once per peer
// and window, with a summary of how many more were refused.
func (m *Monitor) refusedMessage(peer string, err error) {
	logIt, done := m.refused.note("peer "+peer, "", time.Now())
	if done.suppressed > 0 {
		m.log.Warn("messages refused from peer, not logged one by one", "peer", peer, "suppressed", done.suppressed, "since", done.since.UTC().Format(time.RFC3339))
	}
	if logIt {
		m.log.Warn("refusing a message from peer unread", "peer", peer, "err", err)
	}
}

// noteError records a connection problem with peer and logs it, at most once
// a minute for the same message.
func (m *Monitor) noteError(peer string, msg string, err error) {
	m.mu.Lock()
	ps, ok := m.peers[peer]
	if !ok {
		m.mu.Unlock()
		return
	}
	text := err.Error()
	ps.lastErr = msg + ": " + text
	logIt := text != ps.loggedErr || time.Since(ps.loggedAt) > time.Minute
	if logIt {
		ps.loggedErr, ps.loggedAt = text, time.Now()
	}
	m.mu.Unlock()
	if logIt {
		m.log.Warn(msg, "peer", peer, "err", text)
	}
}
