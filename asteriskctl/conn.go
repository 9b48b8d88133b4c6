package asteriskctl

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// bannerPrefix starts the greeting of every Asterisk manager.
const bannerPrefix = "Asterisk Call Manager/"

// errClientClosed ends a connection the client closed itself.
var errClientClosed = errors.New("connection closed by client")

// conn is one AMI TCP connection: banner checked, reader goroutine running,
// actions correlated to their answers by ActionID. Safe for concurrent use.
type conn struct {
	nc       net.Conn
	rd       *Reader
	log      *slog.Logger
	addr     string
	banner   string
	idPrefix string
	seq      atomic.Uint64
	onEvent  func(*Message)

	wmu sync.Mutex // serializes writes of whole actions

	mu      sync.Mutex
	pending map[string]*pending // nil once the connection ended
	err     error               // why the connection ended
	done    chan struct{}       // closed when the connection ended

	fullyBooted atomic.Bool
}

// pending is one action waiting for its answer.
type pending struct {
	action string
	list   bool
	resp   *Message
	events []*Message
	err    error
	done   chan struct{} // closed exactly once, with c.mu held, after removal from c.pending
}

// dialConn connects to addr, checks the banner and starts the reader.
// onEvent receives every event that does not belong to a list action; it
// must not block.
func dialConn(ctx context.Context, addr string, timeout time.Duration, lim Limits, log *slog.Logger, onEvent func(*Message)) (*conn, error) {
	dctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var d net.Dialer
	nc, err := d.DialContext(dctx, "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("connect to AMI at %s: %w", addr, err)
	}
	deadline, _ := dctx.Deadline()
	_ = nc.SetReadDeadline(deadline)
	stop := context.AfterFunc(dctx, func() { _ = nc.SetReadDeadline(time.Unix(1, 0)) })
	rd := NewReader(nc, lim)
	banner, err := rd.ReadBanner()
	if !stop() && err == nil {
		err = context.Cause(dctx) // the deadline may already be in the past
	}
	if err != nil {
		_ = nc.Close()
		if dctx.Err() != nil {
			return nil, fmt.Errorf("read AMI banner from %s: %w", addr, context.Cause(dctx))
		}
		return nil, fmt.Errorf("read AMI banner from %s: %w", addr, err)
	}
	if !strings.HasPrefix(banner, bannerPrefix) {
		_ = nc.Close()
		if len(banner) > 80 {
			banner = banner[:80] + "…"
		}
		return nil, fmt.Errorf("%s: %w (banner %q)", addr, ErrBadBanner, banner)
	}
	_ = nc.SetReadDeadline(time.Time{})
	var rnd [4]byte
	_, _ = rand.Read(rnd[:])
	c := &conn{
		nc:       nc,
		rd:       rd,
		log:      log,
		addr:     addr,
		banner:   banner,
		idPrefix: "pbxsync-" + hex.EncodeToString(rnd[:]) + "-",
		onEvent:  onEvent,
		pending:  make(map[string]*pending),
		done:     make(chan struct{}),
	}
	go c.readLoop()
	return c, nil
}

// closed reports whether the connection ended, and why.
func (c *conn) closed() (bool, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.pending == nil, c.err
}

// close ends the connection; pending actions fail with ErrConnectionLost.
func (c *conn) close() { c.fail(errClientClosed) }

// fail ends the connection once, failing every pending action with cause.
func (c *conn) fail(cause error) {
	c.mu.Lock()
	if c.pending == nil {
		c.mu.Unlock()
		return
	}
	ps := c.pending
	c.pending = nil
	c.err = cause
	for _, p := range ps {
		p.err = lostError(p.action, cause)
		close(p.done)
	}
	close(c.done)
	c.mu.Unlock()
	_ = c.nc.Close()
}

// readLoop reads messages until the connection ends.
func (c *conn) readLoop() {
	for {
		m, err := c.rd.ReadMessage()
		if err != nil {
			switch {
			case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
				err = fmt.Errorf("AMI at %s closed the connection: %w", c.addr, err)
			case errors.Is(err, net.ErrClosed):
				err = errClientClosed
			default:
				err = fmt.Errorf("read from AMI at %s: %w", c.addr, err)
			}
			c.fail(err)
			return
		}
		c.dispatch(m)
	}
}

// isListEnd reports whether event m closes a list answer.
func isListEnd(m *Message) bool {
	return strings.EqualFold(m.Get("EventList"), "Complete") || strings.HasSuffix(m.Event(), "Complete")
}

// dispatch routes a message: responses and list events to their pending
// action, other events to onEvent.
func (c *conn) dispatch(m *Message) {
	id := m.ActionID()
	if _, isResp := m.Lookup("Response"); isResp {
		c.mu.Lock()
		p := c.pending[id]
		if p == nil {
			c.mu.Unlock()
			c.log.Debug("AMI answer for no waiting action (late after a timeout?)", "action_id", id, "response", m.Response())
			return
		}
		p.resp = m
		if p.list && strings.EqualFold(m.Response(), "Success") {
			c.mu.Unlock() // wait for the list's events
			return
		}
		delete(c.pending, id)
		close(p.done)
		c.mu.Unlock()
		return
	}
	ev, isEvent := m.Lookup("Event")
	if !isEvent {
		c.log.Warn("AMI message that is neither a response nor an event ignored", "message", m)
		return
	}
	if id != "" {
		c.mu.Lock()
		if p := c.pending[id]; p != nil && p.list {
			p.events = append(p.events, m)
			if isListEnd(m) {
				delete(c.pending, id)
				close(p.done)
			}
			c.mu.Unlock()
			return
		}
		c.mu.Unlock()
	}
	if strings.EqualFold(ev, "FullyBooted") {
		c.fullyBooted.Store(true)
	} else if strings.EqualFold(ev, "Shutdown") {
		c.fullyBooted.Store(false)
	}
	if c.onEvent != nil {
		c.onEvent(m)
	}
}

// write sends one encoded action under the write lock, bounded by ctx's
// deadline (30s without one; a Session always sets one). A failed or
// partial write poisons the stream, so it ends the connection.
func (c *conn) write(ctx context.Context, b []byte) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if err := ctx.Err(); err != nil {
		return err // nothing written: the connection stays usable
	}
	deadline, ok := ctx.Deadline()
	if !ok {
		deadline = time.Now().Add(30 * time.Second)
	}
	_ = c.nc.SetWriteDeadline(deadline)
	if _, err := c.nc.Write(b); err != nil {
		c.fail(fmt.Errorf("write to AMI at %s: %w", c.addr, err))
		return err
	}
	return nil
}

// do sends action and waits for its answer. For list actions (list true) a
// "Success" answer is followed by events up to the one that closes the list;
// they are returned in order. A non-success answer is returned as the
// message with a nil error: callers interpret it.
func (c *conn) do(ctx context.Context, action *Message, list bool) (*Message, []*Message, error) {
	name := action.Get("Action")
	id := c.idPrefix + strconv.FormatUint(c.seq.Add(1), 10)
	action.Set("ActionID", id)
	b, err := action.Encode()
	if err != nil {
		return nil, nil, fmt.Errorf("action %s: %w", name, err)
	}
	p := &pending{action: name, list: list, done: make(chan struct{})}
	c.mu.Lock()
	if c.pending == nil {
		err := c.err
		c.mu.Unlock()
		return nil, nil, lostError(name, err)
	}
	c.pending[id] = p
	c.mu.Unlock()

	if err := c.write(ctx, b); err != nil && ctx.Err() != nil {
		c.mu.Lock()
		if c.pending != nil {
			delete(c.pending, id)
		}
		c.mu.Unlock()
		return nil, nil, waitError(name, ctx, nil)
	}
	// On a write error p fails with the connection.
	select {
	case <-p.done:
		return p.resp, p.events, p.err
	case <-ctx.Done():
		c.mu.Lock()
		select {
		case <-p.done: // answered meanwhile
			c.mu.Unlock()
			return p.resp, p.events, p.err
		default:
		}
		delete(c.pending, id)
		c.mu.Unlock()
		return nil, nil, waitError(name, ctx, nil)
	}
}
