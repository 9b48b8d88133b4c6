// Package wanlink is a userspace UDP forwarder for tests and benchmarks: it
// stands between two peers on 127.0.0.1, delays every datagram by a fixed
// one-way delay, drops a given fraction of them (seeded, so the same
// datagrams are lost in every run) and counts the payload bytes in each
// direction. It replaces netem on kernels that lack it. A WAN (wan.go)
// joins whole sites with such links.
//
// A Link listens on one address and forwards to one upstream address. Each
// client address that sends to it gets its own upstream socket (as a NAT
// would), so the upstream sees the link, not the client, as the sender.
// Everything is bounded: the number of client sessions, the datagrams in
// flight per direction (a full queue drops, like a congested link), and the
// datagram size. A Link stops when its context ends or on Close, and Close
// returns only after every goroutine it started has returned.
package wanlink

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// Config says how a Link behaves.
type Config struct {
	// Listen is the address the link listens on; default "127.0.0.1:0".
	Listen string
	// Upstream is the address datagrams are forwarded to (required).
	Upstream string
	// Delay is added to every datagram in each direction (one way).
	Delay time.Duration
	// MaxSessions bounds the client addresses served at once; default 16.
	// Datagrams from further clients are dropped.
	MaxSessions int
	// QueueLen bounds the datagrams in flight per direction and session;
	// default 4096. A datagram that finds its queue full is dropped.
	QueueLen int
	// IdleTimeout ends a session that carried nothing for this long;
	// default 30 s.
	IdleTimeout time.Duration
	// Loss is the fraction of datagrams dropped in each direction, from
	// 0 (none) to 1 (all). Which ones is decided by a generator seeded
	// with Seed, one per direction, so a run that sends the same
	// datagrams loses the same ones.
	Loss float64
	Seed uint64
}

// Counts are payload bytes and datagrams a Link carried. Up and Down count
// what was delivered (or is on its way); Lost and Dropped what was not.
type Counts struct {
	Up, Down               uint64 // payload bytes client→upstream, upstream→client
	UpPackets, DownPackets uint64
	Dropped                uint64 // datagrams dropped (queue full, too many sessions, blocked)
	Lost                   uint64 // datagrams dropped by Config.Loss
}

// Total is the payload bytes in both directions.
func (c Counts) Total() uint64 { return c.Up + c.Down }

// Sub returns c minus an earlier reading.
func (c Counts) Sub(old Counts) Counts {
	return Counts{Up: c.Up - old.Up, Down: c.Down - old.Down, UpPackets: c.UpPackets - old.UpPackets,
		DownPackets: c.DownPackets - old.DownPackets, Dropped: c.Dropped - old.Dropped, Lost: c.Lost - old.Lost}
}

// Add returns c plus o.
func (c Counts) Add(o Counts) Counts {
	return Counts{Up: c.Up + o.Up, Down: c.Down + o.Down, UpPackets: c.UpPackets + o.UpPackets,
		DownPackets: c.DownPackets + o.DownPackets, Dropped: c.Dropped + o.Dropped, Lost: c.Lost + o.Lost}
}

// Reverse returns c seen from the other end: Up and Down swapped.
func (c Counts) Reverse() Counts {
	return Counts{Up: c.Down, Down: c.Up, UpPackets: c.DownPackets, DownPackets: c.UpPackets, Dropped: c.Dropped, Lost: c.Lost}
}

// maxDatagram is the largest UDP payload.
const maxDatagram = 65535

// Link is one running forwarder.
type Link struct {
	cfg      Config
	conn     *net.UDPConn
	upstream *net.UDPAddr
	ctx      context.Context
	cancel   context.CancelFunc
	wg       sync.WaitGroup

	mu       sync.Mutex
	sessions map[string]*session
	clients  map[string]*clientCounts // by client address; outlives its sessions
	toClient chan clientPacket        // answers on their way back, shared by every session

	upLoss, downLoss                      *loss // nil without Config.Loss
	up, down, upPk, downPk, dropped, lost atomic.Uint64
	blocked                               atomic.Bool // SetBlocked: drop everything
}

// SetBlocked cuts the link (every datagram in either direction is dropped
// and counted as dropped) or, with false, restores it: a partition for
// tests.
func (l *Link) SetBlocked(b bool) { l.blocked.Store(b) }

// clientCounts are the bytes one client address sent and received
// through the link.
type clientCounts struct{ up, down atomic.Uint64 }

type session struct {
	counts *clientCounts
	client *net.UDPAddr
	conn   *net.UDPConn // connected to the upstream
	toUp   chan packet
	last   atomic.Int64 // unix nanoseconds of the last datagram
}

type packet struct {
	data []byte
	due  time.Time
}

// Start listens and forwards until ctx ends or Close is called.
func Start(ctx context.Context, cfg Config) (*Link, error) {
	if cfg.Listen == "" {
		cfg.Listen = "127.0.0.1:0"
	}
	if cfg.MaxSessions <= 0 {
		cfg.MaxSessions = 16
	}
	if cfg.QueueLen <= 0 {
		cfg.QueueLen = 4096
	}
	if cfg.IdleTimeout <= 0 {
		cfg.IdleTimeout = 30 * time.Second
	}
	if cfg.Delay < 0 {
		return nil, fmt.Errorf("wanlink: negative delay %v", cfg.Delay)
	}
	if !(cfg.Loss >= 0 && cfg.Loss <= 1) {
		return nil, fmt.Errorf("wanlink: loss %v is not a fraction from 0 to 1", cfg.Loss)
	}
	up, err := net.ResolveUDPAddr("udp", cfg.Upstream)
	if err != nil {
		return nil, fmt.Errorf("wanlink: upstream %q: %w", cfg.Upstream, err)
	}
	la, err := net.ResolveUDPAddr("udp", cfg.Listen)
	if err != nil {
		return nil, fmt.Errorf("wanlink: listen %q: %w", cfg.Listen, err)
	}
	conn, err := net.ListenUDP("udp", la)
	if err != nil {
		return nil, fmt.Errorf("wanlink: listen %s: %w", cfg.Listen, err)
	}
	ctx, cancel := context.WithCancel(ctx)
	l := &Link{cfg: cfg, conn: conn, upstream: up, ctx: ctx, cancel: cancel, sessions: map[string]*session{}, clients: map[string]*clientCounts{},
		toClient: make(chan clientPacket, cfg.QueueLen)}
	if cfg.Loss > 0 {
		l.upLoss, l.downLoss = newLoss(cfg.Loss, cfg.Seed, 0), newLoss(cfg.Loss, cfg.Seed, 1)
	}
	l.wg.Add(3)
	go func() { defer l.wg.Done(); <-ctx.Done(); conn.Close() }()
	go func() { defer l.wg.Done(); l.readClients() }()
	go func() { defer l.wg.Done(); l.deliverToClients(l.toClient) }()
	return l, nil
}

type clientPacket struct {
	packet
	to *net.UDPAddr
}

// Addr is the address clients send to.
func (l *Link) Addr() *net.UDPAddr { return l.conn.LocalAddr().(*net.UDPAddr) }

// Counts returns what the link carried so far.
func (l *Link) Counts() Counts {
	return Counts{Up: l.up.Load(), Down: l.down.Load(), UpPackets: l.upPk.Load(), DownPackets: l.downPk.Load(),
		Dropped: l.dropped.Load(), Lost: l.lost.Load()}
}

// ClientCounts returns the payload bytes one client address (host:port
// as the link saw it) sent (Up) and received (Down) through the link.
func (l *Link) ClientCounts(addr string) Counts {
	l.mu.Lock()
	cc := l.clients[addr]
	l.mu.Unlock()
	if cc == nil {
		return Counts{}
	}
	return Counts{Up: cc.up.Load(), Down: cc.down.Load()}
}

// Close stops the link and waits for its goroutines.
func (l *Link) Close() error {
	l.cancel()
	l.wg.Wait()
	return nil
}

// Done is closed when the link has stopped accepting datagrams.
func (l *Link) Done() <-chan struct{} { return l.ctx.Done() }

func (l *Link) readClients() {
	buf := make([]byte, maxDatagram)
	for {
		n, from, err := l.conn.ReadFromUDP(buf)
		if err != nil {
			if l.ctx.Err() != nil || errors.Is(err, net.ErrClosed) {
				l.cancel()
				return
			}
			continue
		}
		if l.blocked.Load() {
			l.dropped.Add(1)
			continue
		}
		s := l.session(from)
		if s == nil {
			l.dropped.Add(1)
			continue
		}
		s.last.Store(time.Now().UnixNano())
		if l.upLoss.drop() {
			l.lost.Add(1)
			continue
		}
		p := packet{data: append([]byte(nil), buf[:n]...), due: time.Now().Add(l.cfg.Delay)}
		// counted before it is queued: once queued it may be delivered,
		// and answered, before this goroutine runs again
		count(&l.up, &l.upPk, &s.counts.up, n, 1)
		select {
		case s.toUp <- p:
		default:
			count(&l.up, &l.upPk, &s.counts.up, n, -1) // not carried after all
			l.dropped.Add(1)
		}
	}
}

// session returns the session of a client address, starting one if there
// is room; nil when there is none.
func (l *Link) session(from *net.UDPAddr) *session {
	key := from.String()
	l.mu.Lock()
	defer l.mu.Unlock()
	if s := l.sessions[key]; s != nil {
		return s
	}
	if len(l.sessions) >= l.cfg.MaxSessions || l.ctx.Err() != nil {
		return nil
	}
	c, err := net.DialUDP("udp", nil, l.upstream)
	if err != nil {
		return nil
	}
	cc := l.clients[key]
	if cc == nil {
		cc = &clientCounts{}
		l.clients[key] = cc
	}
	s := &session{counts: cc, client: from, conn: c, toUp: make(chan packet, l.cfg.QueueLen)}
	s.last.Store(time.Now().UnixNano())
	l.sessions[key] = s
	l.wg.Add(2)
	go func() { defer l.wg.Done(); l.deliverUp(s) }()
	go func() { defer l.wg.Done(); l.readUpstream(s) }()
	return s
}

// deliverUp sends a session's datagrams upstream when they are due, and
// ends the session when it idles or the link stops.
func (l *Link) deliverUp(s *session) {
	defer func() {
		s.conn.Close()
		l.mu.Lock()
		delete(l.sessions, s.client.String())
		l.mu.Unlock()
	}()
	idle := time.NewTicker(l.cfg.IdleTimeout / 4)
	defer idle.Stop()
	for {
		select {
		case <-l.ctx.Done():
			return
		case <-idle.C:
			if time.Since(time.Unix(0, s.last.Load())) > l.cfg.IdleTimeout {
				return
			}
		case p := <-s.toUp:
			if !sleepUntil(l.ctx, p.due) {
				return
			}
			s.conn.Write(p.data) // a lost datagram is what UDP allows
		}
	}
}

// readUpstream queues the upstream's answers to the session's client.
func (l *Link) readUpstream(s *session) {
	buf := make([]byte, maxDatagram)
	for {
		n, err := s.conn.Read(buf)
		if err != nil {
			if l.ctx.Err() != nil || errors.Is(err, net.ErrClosed) {
				return
			}
			continue // e.g. ECONNREFUSED while the upstream restarts
		}
		if l.blocked.Load() {
			l.dropped.Add(1)
			continue
		}
		s.last.Store(time.Now().UnixNano())
		if l.downLoss.drop() {
			l.lost.Add(1)
			continue
		}
		p := clientPacket{packet{data: append([]byte(nil), buf[:n]...), due: time.Now().Add(l.cfg.Delay)}, s.client}
		count(&l.down, &l.downPk, &s.counts.down, n, 1) // before it is queued (see readClients)
		select {
		case l.toClient <- p:
		default:
			count(&l.down, &l.downPk, &s.counts.down, n, -1)
			l.dropped.Add(1)
		}
	}
}

// deliverToClients sends the upstream's answers from the listening socket
// when they are due.
func (l *Link) deliverToClients(q <-chan clientPacket) {
	for {
		select {
		case <-l.ctx.Done():
			return
		case p := <-q:
			if !sleepUntil(l.ctx, p.due) {
				return
			}
			l.conn.WriteToUDP(p.data, p.to)
		}
	}
}

// sleepUntil waits until t; false when ctx ended first.
func sleepUntil(ctx context.Context, t time.Time) bool {
	d := time.Until(t)
	if d <= 0 {
		return ctx.Err() == nil
	}
	tm := time.NewTimer(d)
	defer tm.Stop()
	select {
	case <-tm.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// count adds (sign 1) or takes back (sign -1) one datagram of n bytes to
// a link's bytes and packets and to a client's bytes.
func count(bytes, packets, client *atomic.Uint64, n int, sign int) {
	if sign > 0 {
		bytes.Add(uint64(n))
		packets.Add(1)
		client.Add(uint64(n))
		return
	}
	bytes.Add(^uint64(n - 1)) // minus n
	packets.Add(^uint64(0))
	client.Add(^uint64(n - 1))
}
