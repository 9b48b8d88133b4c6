package remotemon

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"slices"
	"sync"
	"time"

	"github.com/quic-go/quic-go"

	"pbxsync/internal/wire"
)

// conn is one live QUIC connection to a peer with its control stream.
type conn struct {
	qc       *quic.Conn
	peer     string
	outbound bool
	ctrl     *quic.Stream
	// run tells the runs of the peer's agent apart: the serial number of
	// the certificate it presented (identity.RunCertificate). A
	// connection of a new run means the connections of the earlier one
	// are dead, whether or not this node has noticed yet.
	run string

	wmu      sync.Mutex
	q        *sendQueue // frames for ctrl, written by writeLoop
	pmu      sync.Mutex
	pingSeq  uint64
	pingSent time.Time
	lastRecv time.Time
	// bytesSeen is the connection's QUIC bytes received at the pinger's
	// last look: bytes arriving prove the peer alive even while this
	// node's reader is busy with a large frame or its handler.
	bytesSeen uint64
}

// send writes m on the control stream now (the Hello, before the
// connection's writer runs); everything else goes through enqueue.
func (c *conn) send(codec *wire.Codec, m wire.Message) error {
	b, err := codec.Encode(m)
	if err != nil {
		return err
	}
	c.wmu.Lock()
	defer c.wmu.Unlock()
	c.ctrl.SetWriteDeadline(time.Now().Add(10 * time.Second))
	_, err = c.ctrl.Write(b)
	return err
}

// startDialerLocked starts the dial loop of ps, unless it has no address.
func (m *Monitor) startDialerLocked(ctx context.Context, name string, ps *peerState) {
	if ps.cfg.Address == "" {
		return // a peer without an address is only accepted when it dials in
	}
	dctx, cancel := context.WithCancel(ctx)
	ps.cancelDial = cancel
	go m.dialLoop(dctx, name, ps.cfg)
}

// dialLoop keeps one outbound connection to p, reconnecting with
// exponential backoff and jitter.
func (m *Monitor) dialLoop(ctx context.Context, name string, p Peer) {
	const minBackoff = 100 * time.Millisecond
	backoff := minBackoff
	for ctx.Err() == nil {
		err := m.dialOnce(ctx, p)
		if ctx.Err() != nil {
			return
		}
		if err != nil {
			m.noteError(name, "cannot connect to peer", err)
		} else {
			backoff = minBackoff // the connection lived; start over quickly
		}
		sleep := backoff/2 + rand.N(backoff/2+1)
		backoff = min(backoff*2, m.opts.MaxBackoff)
		select {
		case <-ctx.Done():
			return
		case <-time.After(sleep):
		}
	}
}

// dialOnce connects to p and serves the connection until it dies. It
// returns an error when no connection could be made.
func (m *Monitor) dialOnce(ctx context.Context, p Peer) error {
	addr, err := net.ResolveUDPAddr("udp", p.Address)
	if err != nil {
		return fmt.Errorf("resolve %s: %w", p.Address, err)
	}
	hctx, cancel := context.WithTimeout(ctx, 4*time.Second)
	defer cancel()
	qc, err := m.tr.Dial(hctx, addr, m.clientTLS(p), m.qconf)
	if err != nil {
		return fmt.Errorf("handshake with %s: %w", p.Address, err)
	}
	ctrl, err := qc.OpenStreamSync(hctx)
	if err != nil {
		qc.CloseWithError(1, "no control stream")
		return fmt.Errorf("open control stream to %s: %w", p.Address, err)
	}
	c := &conn{qc: qc, peer: p.Name, outbound: true, ctrl: ctrl, run: peerRun(qc), lastRecv: time.Now(), q: newSendQueue(m.opts.MaxQueue)}
	if err := c.send(m.codec, &wire.Hello{Node: m.opts.Node, Agent: m.opts.Agent}); err != nil {
		qc.CloseWithError(1, "hello failed")
		return fmt.Errorf("hello to %s: %w", p.Address, err)
	}
	// In TLS 1.3 the client finishes its handshake before the server has
	// checked the client's certificate: only the peer's Hello in return
	// proves that it accepted us.
	ctrl.SetReadDeadline(time.Now().Add(5 * time.Second))
	reply, err := m.codec.Read(ctrl)
	ctrl.SetReadDeadline(time.Time{})
	if err != nil {
		qc.CloseWithError(1, "no hello")
		return fmt.Errorf("peer %s at %s did not accept this node (is this node's ID pinned there?): %w", p.Name, p.Address, err)
	}
	if _, ok := reply.(*wire.Hello); !ok {
		qc.CloseWithError(1, "bad hello")
		return fmt.Errorf("peer %s at %s answered %s instead of Hello", p.Name, p.Address, reply.Type())
	}
	m.log.Debug("connected", "peer", p.Name, "addr", p.Address, "dir", "out")
	m.serve(ctx, c)
	return nil
}

// serveInbound identifies an accepted connection by its pinned ID, reads
// the dialer's Hello and serves the connection.
func (m *Monitor) serveInbound(ctx context.Context, qc *quic.Conn) {
	certs := qc.ConnectionState().TLS.PeerCertificates
	if len(certs) == 0 {
		qc.CloseWithError(1, "no certificate")
		return
	}
	id, err := presentedID([][]byte{certs[0].Raw})
	if err != nil {
		qc.CloseWithError(1, "bad certificate")
		return
	}
	p, ok := m.peerByID(id)
	if !ok { // the TLS check already refused it; a config reload may have raced
		m.refusedHandshake(qc.RemoteAddr().String(), id.String(), "refusing connection from unknown node", "presented_id", id.String())
		qc.CloseWithError(1, "not pinned")
		return
	}
	actx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	ctrl, err := qc.AcceptStream(actx)
	if err != nil {
		qc.CloseWithError(1, "no control stream")
		return
	}
	ctrl.SetReadDeadline(time.Now().Add(5 * time.Second))
	first, err := m.codec.Read(ctrl)
	ctrl.SetReadDeadline(time.Time{})
	if err != nil {
		m.noteError(p.Name, "bad hello from peer", err)
		qc.CloseWithError(1, "bad hello")
		return
	}
	hello, ok := first.(*wire.Hello)
	if !ok {
		m.noteError(p.Name, "bad hello from peer", fmt.Errorf("first control message is %s", first.Type()))
		qc.CloseWithError(1, "bad hello")
		return
	}
	if hello.Node != p.Name {
		m.log.Warn("peer calls itself by another name; using the configured name", "peer", p.Name, "says", hello.Node)
	}
	c := &conn{qc: qc, peer: p.Name, ctrl: ctrl, run: peerRun(qc), lastRecv: time.Now(), q: newSendQueue(m.opts.MaxQueue)}
	if err := c.send(m.codec, &wire.Hello{Node: m.opts.Node, Agent: m.opts.Agent}); err != nil {
		qc.CloseWithError(1, "hello failed")
		return
	}
	m.log.Debug("connected", "peer", p.Name, "dir", "in")
	m.serve(ctx, c)
}

// serve registers c, runs its reader, stream acceptor and pinger, and
// unregisters it when the connection ends.
func (m *Monitor) serve(ctx context.Context, c *conn) {
	if !m.register(c) {
		c.qc.CloseWithError(0, "peer removed")
		return
	}
	cctx, cancel := context.WithCancel(c.qc.Context())
	defer cancel()
	stop := context.AfterFunc(ctx, func() { c.qc.CloseWithError(0, "shutting down") })
	defer stop()
	go m.acceptStreams(cctx, c)
	go m.pinger(cctx, c)
	go m.writeLoop(cctx, c)
	err := m.readControl(c)
	c.qc.CloseWithError(0, "control stream ended")
	if ctx.Err() == nil && !isClosed(err) {
		m.noteError(c.peer, "connection to peer lost", err)
	}
	m.unregister(c)
}

func isClosed(err error) bool {
	var appErr *quic.ApplicationError
	return errors.As(err, &appErr) && appErr.ErrorCode == 0
}

// readControl serves c's control stream until it fails; it always returns
// the error that ended it.
func (m *Monitor) readControl(c *conn) error {
	gate := m.gate(c.peer)
	for {
		msg, err := m.codec.ReadGated(c.ctrl, gate)
		if errors.Is(err, wire.ErrRefused) {
			m.refusedMessage(c.peer, err)
			c.pmu.Lock()
			c.lastRecv = time.Now()
			c.pmu.Unlock()
			continue
		}
		if err != nil {
			return err
		}
		now := time.Now()
		c.pmu.Lock()
		c.lastRecv = now
		var rtt time.Duration
		if p, ok := msg.(*wire.Pong); ok && p.Seq == c.pingSeq && !c.pingSent.IsZero() {
			rtt = now.Sub(c.pingSent)
		}
		c.pmu.Unlock()
		m.mu.Lock()
		if ps, ok := m.peers[c.peer]; ok {
			ps.lastSeen = now
			if rtt > 0 {
				ps.rtt = rtt
			}
		}
		m.mu.Unlock()
		switch msg := msg.(type) {
		case *wire.Ping:
			c.enqueue(m.codec, &wire.Pong{Seq: msg.Seq}) // a full queue drops it: the peer is not reading anyway
		case *wire.Pong, *wire.Hello:
		case *wire.State:
			m.mu.Lock()
			if ps, ok := m.peers[c.peer]; ok {
				ps.state, ps.stateTime = msg, now
			}
			m.mu.Unlock()
			m.handler.HandleMessage(c.peer, msg)
		default:
			m.handler.HandleMessage(c.peer, msg)
		}
	}
}

// inboundPingEvery: a connection the peer dialed is pinged by the peer;
// this side pings it only this often (an RTT where it has no connection of
// its own) or when the peer falls silent.
const inboundPingEvery = 10 * time.Second

// pinger pings c every PingInterval (a connection the peer dialed only
// when the peer does not) and closes it when nothing was received for
// DeadAfter.
func (m *Monitor) pinger(ctx context.Context, c *conn) {
	t := time.NewTicker(m.opts.PingInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		received := c.qc.ConnectionStats().BytesReceived
		c.pmu.Lock()
		if received != c.bytesSeen {
			// the peer sent something (a frame still being read, a ping
			// queued behind a large one, QUIC's own acknowledgements)
			c.bytesSeen, c.lastRecv = received, time.Now()
		}
		silent := time.Since(c.lastRecv)
		if silent <= m.opts.DeadAfter && !c.outbound && silent < 2*m.opts.PingInterval && time.Since(c.pingSent) < inboundPingEvery {
			// the peer pings this connection (it dialed it): its pings
			// prove it alive, and a ping both ways doubles the idle
			// traffic of the link
			c.pmu.Unlock()
			continue
		}
		c.pingSeq++
		seq := c.pingSeq
		c.pingSent = time.Now()
		c.pmu.Unlock()
		if silent > m.opts.DeadAfter {
			m.noteError(c.peer, "peer stopped answering", fmt.Errorf("nothing received for %s", silent.Round(time.Millisecond)))
			c.qc.CloseWithError(2, "peer silent")
			return
		}
		if err := c.enqueue(m.codec, &wire.Ping{Seq: seq}); err != nil && !errors.Is(err, ErrPeerSlow) {
			c.qc.CloseWithError(2, "ping failed")
			return
		}
	}
}

func (m *Monitor) acceptStreams(ctx context.Context, c *conn) {
	peerGate := m.gate(c.peer)
	// the first frame of a stream a peer opens must be a Get (or the
	// Offer or Wake of a source: hints, see wire.Offer and wire.Wake)
	gate := func(t wire.Type, job string) error {
		if t != wire.TypeGet && t != wire.TypeOffer && t != wire.TypeWake {
			return fmt.Errorf("a transfer stream must start with Get, Offer or Wake, not %s", t)
		}
		if peerGate != nil {
			return peerGate(t, job)
		}
		return nil
	}
	for {
		s, err := c.qc.AcceptStream(ctx)
		if err != nil {
			return
		}
		go func() {
			st := &Stream{s: s, codec: m.codec}
			s.SetReadDeadline(time.Now().Add(10 * time.Second))
			first, err := m.codec.ReadGated(s, gate)
			s.SetReadDeadline(time.Time{})
			if errors.Is(err, wire.ErrRefused) {
				m.refusedMessage(c.peer, err)
				st.WriteMessage(&wire.Error{Message: "refused: " + err.Error()})
				st.s.CancelRead(1)
				st.Close()
				return
			}
			if err != nil {
				m.refusedMessage(c.peer, fmt.Errorf("bad transfer request: %w", err))
				st.Abort()
				return
			}
			m.handler.HandleStream(ctx, c.peer, first, st)
			// the handler read what it wanted: complete the receive side,
			// or a peer's end of stream that arrived after the request
			// (a request of several packets, a loaded machine) is never
			// read, the stream never completes and its credit
			// (maxIncomingStreams) never comes back
			s.CancelRead(0)
		}()
	}
}

// peerRun is the run of the peer's agent that qc talks to: the serial
// number of the certificate it presented ("" when there is none, which
// the handshake does not let through).
func peerRun(qc *quic.Conn) string {
	certs := qc.ConnectionState().TLS.PeerCertificates
	if len(certs) == 0 {
		return ""
	}
	return certs[0].SerialNumber.Text(16)
}

// register adds c to its peer's connections; false when the peer is no
// longer configured. A connection from a new run of the peer's agent (it
// restarted) ends the earlier run's connections at once: the handler
// hears the peer go down and come up, as it would had this node seen
// the old connections end first, and tells the restarted peer what it
// must know (a restart that beat its own close to this node otherwise
// looks like a second connection of a peer that never left).
func (m *Monitor) register(c *conn) bool {
	m.mu.Lock()
	ps, ok := m.peers[c.peer]
	if !ok {
		m.mu.Unlock()
		return false
	}
	// a run that a newer one replaced cannot connect again, nor still be
	// connected, unless two agents run with the peer's key at once: then
	// every connection is accepted, as before runs were told apart,
	// instead of each agent's ending the other's
	retired := func(x *conn) bool { return slices.Contains(ps.retired, x.run) }
	twoRuns := retired(c) || slices.ContainsFunc(ps.conns, retired)
	var stale []*conn
	for _, x := range ps.conns {
		if x.run != c.run && !twoRuns {
			stale = append(stale, x)
		}
	}
	for _, x := range stale {
		m.dropLocked(ps, x)
		if !slices.Contains(ps.retired, x.run) {
			ps.retired = append(ps.retired, x.run)
			if len(ps.retired) > maxRetiredRuns {
				ps.retired = ps.retired[1:]
			}
		}
	}
	ps.conns = append(ps.conns, c)
	if len(ps.conns) > maxConnsPerPeer {
		// a peer (or someone with its key) opening connection after
		// connection: keep the newest few
		old := ps.conns[0]
		go old.qc.CloseWithError(4, "too many connections")
	}
	first := len(ps.conns) == 1
	ps.lastSeen = time.Now()
	ps.downSince = time.Time{}
	ps.lastErr = ""
	ps.loggedErr = ""
	m.mu.Unlock()
	if twoRuns {
		m.noteError(c.peer, "two running agents present this peer's key (a copied data_dir or a cloned machine?); its restarts are not told apart",
			fmt.Errorf("run %s connected again after a newer run had replaced it", c.run))
	}
	for _, x := range stale {
		go x.qc.CloseWithError(0, "peer restarted")
	}
	if len(stale) > 0 {
		m.log.Info("peer down", "peer", c.peer, "reason", "it restarted")
		m.eventMu.Lock()
		m.handler.PeerChanged(c.peer, false)
		m.eventMu.Unlock()
	}
	if first {
		m.log.Info("peer up", "peer", c.peer)
		m.eventMu.Lock()
		m.handler.PeerChanged(c.peer, true)
		m.eventMu.Unlock()
	}
	return true
}

// dropLocked removes c from ps's connections and counts its traffic
// into the peer's closed totals; false when c was not among them.
func (m *Monitor) dropLocked(ps *peerState, c *conn) bool {
	i := slices.Index(ps.conns, c)
	if i < 0 {
		return false
	}
	ps.conns = slices.Delete(slices.Clone(ps.conns), i, i+1)
	cs := c.qc.ConnectionStats()
	ps.closedSent += cs.BytesSent
	ps.closedRecv += cs.BytesReceived
	return true
}

func (m *Monitor) unregister(c *conn) {
	m.mu.Lock()
	ps, ok := m.peers[c.peer]
	last := false
	if ok && m.dropLocked(ps, c) {
		last = len(ps.conns) == 0
		if last {
			ps.downSince = time.Now()
		}
	}
	m.mu.Unlock()
	if last {
		m.log.Info("peer down", "peer", c.peer)
		m.eventMu.Lock()
		m.handler.PeerChanged(c.peer, false)
		m.eventMu.Unlock()
	}
}
