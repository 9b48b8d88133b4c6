package asteriskctl

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"strings"
	"sync"
	"time"
)

// Config configures a [Session]. Zero durations and counts take the
// defaults named on each field.
type Config struct {
	Addr       string // host:port of the manager interface, e.g. "127.0.0.1:5038"
	Username   string // AMI user (manager.conf section)
	SecretFile string // file holding the AMI secret; read once by New, never logged

	DialTimeout   time.Duration // TCP connect + banner + login (default 5s)
	ActionTimeout time.Duration // per action when ctx has no deadline (default 10s)

	MinBackoff time.Duration // first reconnect delay (default 200ms)
	MaxBackoff time.Duration // reconnect delay cap (default 30s)

	// ReloadRetries is how often a Reload answered "A reload is in
	// progress" is retried (default 10); ReloadBackoff is the first delay
	// between those tries, doubling with jitter up to 5s (default 250ms).
	ReloadRetries int
	ReloadBackoff time.Duration

	EventBuffer int    // queue length of a Subscription (default 4096)
	Limits      Limits // wire limits of the reader

	Logger *slog.Logger // default slog.Default()
}

func (c Config) withDefaults() Config {
	if c.DialTimeout <= 0 {
		c.DialTimeout = 5 * time.Second
	}
	if c.ActionTimeout <= 0 {
		c.ActionTimeout = 10 * time.Second
	}
	if c.MinBackoff <= 0 {
		c.MinBackoff = 200 * time.Millisecond
	}
	if c.MaxBackoff <= 0 {
		c.MaxBackoff = 30 * time.Second
	}
	if c.MaxBackoff < c.MinBackoff {
		c.MaxBackoff = c.MinBackoff
	}
	if c.ReloadRetries <= 0 {
		c.ReloadRetries = 10
	}
	if c.ReloadBackoff <= 0 {
		c.ReloadBackoff = 250 * time.Millisecond
	}
	if c.EventBuffer <= 0 {
		c.EventBuffer = DefaultEventBuffer
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	c.Limits = c.Limits.withDefaults()
	return c
}

// Session keeps one AMI session to an Asterisk alive: it connects, logs in,
// reconnects with exponential backoff and jitter when the connection ends,
// and runs actions on the current connection. A Session implements
// [Controller]. It is safe for concurrent use; many actions may be in flight
// at once, except Reload, which runs one at a time.
//
// A Session never resends an action by itself after the connection was lost
// (the action may have run); the caller gets ErrConnectionLost and decides.
// Only "A reload is in progress" answers are retried, because Asterisk did
// not run those reloads.
type Session struct {
	cfg    Config
	secret secret
	log    *slog.Logger

	reloadSem chan struct{} // cap 1: one reload at a time

	mu         sync.Mutex
	cur        *conn
	lastErr    error
	changed    chan struct{} // closed and replaced on every state change
	started    uint64        // connect attempts started
	finished   uint64        // connect attempts finished
	connecting bool
	closed     bool

	subMu sync.RWMutex
	subs  map[*Subscription]struct{}

	kick    chan struct{} // cap 1: an action waits for a connection
	done    chan struct{} // closed by Close
	stopped chan struct{} // closed when the run loop exits
}

var _ Controller = (*Session)(nil)

// New reads the secret from cfg.SecretFile and starts a Session that
// connects in the background. It returns an error only for a bad
// configuration or an unreadable secret file; a down Asterisk is reported by
// the actions (and by WaitConnected) and retried.
func New(cfg Config) (*Session, error) {
	cfg = cfg.withDefaults()
	if cfg.Addr == "" {
		return nil, errors.New("asteriskctl: AMI address is empty")
	}
	if cfg.Username == "" {
		return nil, errors.New("asteriskctl: AMI username is empty")
	}
	if strings.ContainsAny(cfg.Username, "\r\n") {
		return nil, errors.New("asteriskctl: AMI username contains a line break")
	}
	log := cfg.Logger.With("component", "asteriskctl", "ami", cfg.Addr)
	sec, err := readSecretFile(cfg.SecretFile, log)
	if err != nil {
		return nil, fmt.Errorf("asteriskctl: %w", err)
	}
	s := &Session{
		cfg:       cfg,
		secret:    sec,
		log:       log,
		reloadSem: make(chan struct{}, 1),
		changed:   make(chan struct{}),
		subs:      make(map[*Subscription]struct{}),
		kick:      make(chan struct{}, 1),
		done:      make(chan struct{}),
		stopped:   make(chan struct{}),
	}
	go s.run()
	return s, nil
}

// broadcast wakes everyone waiting for a state change. s.mu must be held.
func (s *Session) broadcast() {
	close(s.changed)
	s.changed = make(chan struct{})
}

// backoff returns the delay before reconnect attempt n (n ≥ 1):
// MinBackoff·2^(n-1) capped at MaxBackoff, with jitter in [d/2, d].
func backoff(n int, lo, hi time.Duration) time.Duration {
	d := lo
	for i := 1; i < n && d < hi; i++ {
		d *= 2
	}
	d = min(d, hi)
	half := d / 2
	return half + rand.N(half+1)
}

// run connects, waits for the connection to end, and reconnects, until
// Close.
func (s *Session) run() {
	defer close(s.stopped)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		select {
		case <-s.done:
			cancel()
		case <-ctx.Done():
		}
	}()
	failures := 0
	var down downLog
	for {
		s.mu.Lock()
		if s.closed {
			s.mu.Unlock()
			return
		}
		s.started++
		s.connecting = true
		s.mu.Unlock()

		c, err := s.connect(ctx)

		s.mu.Lock()
		s.finished++
		s.connecting = false
		if err == nil && s.closed {
			c.close()
			err = ErrClosed
		}
		if err == nil {
			s.cur = c
			s.lastErr = nil
		} else {
			s.lastErr = err
		}
		s.broadcast()
		s.mu.Unlock()

		if err == nil {
			upAt := time.Now()
			down.up(s.log, c.banner, upAt)
			select {
			case <-c.done:
			case <-s.done:
				s.logoff(c)
			}
			_, cause := c.closed()
			s.mu.Lock()
			if s.cur == c {
				s.cur = nil
			}
			if !errors.Is(cause, errClientClosed) {
				s.lastErr = cause
			}
			s.broadcast()
			s.mu.Unlock()
			if s.isClosed() {
				return
			}
			s.log.Warn("AMI session lost; reconnecting", "err", cause, "was_up", time.Since(upAt).Round(time.Millisecond))
			if time.Since(upAt) >= stableSession {
				failures = 0
				down.lost(time.Now())
				continue // first retry at once
			}
			// A session that dies right after login (a flapping manager)
			// must not make us reconnect in a tight loop.
			err = cause
		}
		failures++
		d := backoff(failures, s.cfg.MinBackoff, s.cfg.MaxBackoff)
		down.failed(s.log, err, d, time.Now())
		early, ok := s.pause(d)
		if !ok {
			return
		}
		if early {
			down.early++
		}
	}
}

// downSummaryEvery is how often a Session that cannot reach Asterisk logs
// a summary while the error stays the same.
const downSummaryEvery = time.Minute

// downLog logs a Session's failed connects once per state change (the
// first failure, a different error) and then a summary every
// downSummaryEvery, instead of a line per attempt: actions that wait for
// AMI (health probes) start attempts sooner than the backoff, and a line
// per attempt would flood the log and misstate the interval.
type downLog struct {
	since    time.Time // first failure of this outage; zero while up
	lastErr  string
	attempts int // failed attempts in this outage
	early    int // of which started early for a waiting action
	summary  time.Time
	summedAt int // attempts at the last summary
}

// failed records a failed attempt; next is the backoff until the next
// scheduled attempt.
func (d *downLog) failed(log interface {
	Warn(string, ...any)
	Debug(string, ...any)
}, err error, next time.Duration, now time.Time) {
	d.attempts++
	msg := err.Error()
	switch {
	case d.since.IsZero() || d.attempts == 1:
		if d.since.IsZero() {
			d.since = now
		}
		d.summary, d.summedAt = now, d.attempts
		log.Warn("AMI connect failed; retrying with backoff (sooner when an action needs AMI)", "err", err, "next_attempt_in", next)
	case msg != d.lastErr:
		d.summary, d.summedAt = now, d.attempts
		log.Warn("AMI connect failed with a new error; still retrying", "err", err, "attempts", d.attempts, "down_for", now.Sub(d.since).Round(time.Second), "next_attempt_in", next)
	case now.Sub(d.summary) >= downSummaryEvery:
		log.Warn("AMI still unreachable", "err", err, "down_for", now.Sub(d.since).Round(time.Second),
			"attempts", d.attempts, "attempts_since_last_summary", d.attempts-d.summedAt, "early_for_waiting_actions", d.early, "backoff", next)
		d.summary, d.summedAt = now, d.attempts
	default:
		log.Debug("AMI connect failed", "err", err, "attempt", d.attempts, "next_attempt_in", next)
	}
	d.lastErr = msg
}

// lost starts an outage at a session loss (logged by the caller).
func (d *downLog) lost(now time.Time) {
	*d = downLog{since: now, summary: now}
}

// up logs the session coming up, with the outage it ends.
func (d *downLog) up(log *slog.Logger, banner string, now time.Time) {
	if d.since.IsZero() || d.attempts == 0 {
		log.Info("AMI session up", "banner", banner)
	} else {
		log.Info("AMI session up", "banner", banner, "after_failed_attempts", d.attempts, "down_for", now.Sub(d.since).Round(time.Millisecond))
	}
	*d = downLog{}
}

// stableSession is how long a session must have been up for its loss to
// reset the reconnect backoff.
const stableSession = 5 * time.Second

// pause waits d before the next connect attempt, or only MinBackoff when an
// action is waiting for a connection. It reports whether an action cut the
// wait short, and false on Close.
func (s *Session) pause(d time.Duration) (early, ok bool) {
	failedAt := time.Now()
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return false, true
	case <-s.done:
		return false, false
	case <-s.kick:
	}
	wait := s.cfg.MinBackoff - time.Since(failedAt)
	if wait <= 0 {
		return true, true
	}
	t.Reset(wait)
	select {
	case <-t.C:
		return true, true
	case <-s.done:
		return true, false
	}
}

func (s *Session) isClosed() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.closed
}

// connect dials, checks the banner and logs in.
func (s *Session) connect(ctx context.Context) (*conn, error) {
	ctx, cancel := context.WithTimeout(ctx, s.cfg.DialTimeout)
	defer cancel()
	c, err := dialConn(ctx, s.cfg.Addr, s.cfg.DialTimeout, s.cfg.Limits, s.log, s.publish)
	if err != nil {
		return nil, err
	}
	login := NewAction("Login", "Username", s.cfg.Username, "Secret", s.secret.reveal())
	resp, _, err := c.do(ctx, login, false)
	if err != nil {
		c.close()
		return nil, fmt.Errorf("AMI login as %q: %w", s.cfg.Username, err)
	}
	if !strings.EqualFold(resp.Response(), "Success") {
		c.close()
		msg := resp.Get("Message")
		if msg == "" {
			msg = "Response: " + resp.Response()
		}
		return nil, fmt.Errorf("AMI %w for user %q: %s", ErrLoginFailed, s.cfg.Username, msg)
	}
	return c, nil
}

// logoff says goodbye politely, then closes c.
func (s *Session) logoff(c *conn) {
	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	_, _, _ = c.do(ctx, NewAction("Logoff"), false)
	c.close()
}

// publish hands an event to every subscriber without blocking.
func (s *Session) publish(m *Message) {
	s.subMu.RLock()
	defer s.subMu.RUnlock()
	for sub := range s.subs {
		if !sub.push(m) && sub.Dropped() == 1 {
			s.log.Warn("AMI event subscriber queue full; events are being dropped and counted", "event", m.Event())
		}
	}
}

// Subscribe returns a new event subscription with a queue of buffer events
// (≤ 0: Config.EventBuffer). Close it when done.
func (s *Session) Subscribe(buffer int) *Subscription {
	if buffer <= 0 {
		buffer = s.cfg.EventBuffer
	}
	var sub *Subscription
	sub = newSubscription(buffer, func() {
		s.subMu.Lock()
		delete(s.subs, sub)
		s.subMu.Unlock()
	})
	s.subMu.Lock()
	s.subs[sub] = struct{}{}
	s.subMu.Unlock()
	return sub
}

// Connected reports whether a logged-in AMI connection is up right now.
func (s *Session) Connected() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.cur != nil
}

// LastError returns why the last connect attempt or connection failed, or
// nil.
func (s *Session) LastError() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.lastErr
}

// WaitConnected waits until the session is logged in. It returns the error
// of the first connect attempt that fails after the call (for example
// ErrLoginFailed), or the context's error.
func (s *Session) WaitConnected(ctx context.Context) error {
	_, err := s.conn(ctx, "Login")
	return err
}

// conn returns the current connection, waiting for a connect attempt when
// there is none. action names the waiting action in errors. Only an
// attempt that started after the action was asked counts: one already
// under way may have dialled a manager that was still restarting, and its
// failure says nothing about the manager now.
func (s *Session) conn(ctx context.Context, action string) (*conn, error) {
	s.mu.Lock()
	want := s.started + 1
	s.mu.Unlock()
	for {
		s.mu.Lock()
		if s.closed {
			s.mu.Unlock()
			return nil, ErrClosed
		}
		if c := s.cur; c != nil {
			if dead, _ := c.closed(); !dead {
				s.mu.Unlock()
				return c, nil
			}
		}
		if s.finished >= want && s.lastErr != nil && !s.connecting {
			err := s.lastErr
			s.mu.Unlock()
			return nil, fmt.Errorf("%w for action %s: %w", ErrNotConnected, action, err)
		}
		ch := s.changed
		last := s.lastErr
		s.mu.Unlock()
		select {
		case s.kick <- struct{}{}:
		default:
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return nil, waitError(action, ctx, errors.Join(ErrNotConnected, last))
		}
	}
}

// withTimeout applies the default action timeout when ctx has no deadline.
func (s *Session) withTimeout(ctx context.Context) (context.Context, context.CancelFunc) {
	if _, ok := ctx.Deadline(); ok {
		return context.WithCancel(ctx)
	}
	return context.WithTimeout(ctx, s.cfg.ActionTimeout)
}

// Do sends one action built from name and fields and returns Asterisk's
// answer. A "Response: Error" answer is returned as the message and an
// [*ActionError]. Fields may not contain line breaks. ActionID is set by the
// session.
func (s *Session) Do(ctx context.Context, name string, fields ...Field) (*Message, error) {
	resp, _, err := s.do(ctx, name, false, fields)
	return resp, err
}

// DoList sends a list action (one answered by a response and events up to
// a closing "…Complete" event, like CoreShowChannels) and returns the
// response and the events, the closing one included.
func (s *Session) DoList(ctx context.Context, name string, fields ...Field) (*Message, []*Message, error) {
	return s.do(ctx, name, true, fields)
}

func (s *Session) do(ctx context.Context, name string, list bool, fields []Field) (*Message, []*Message, error) {
	ctx, cancel := s.withTimeout(ctx)
	defer cancel()
	c, err := s.conn(ctx, name)
	if err != nil {
		return nil, nil, err
	}
	action := NewAction(name)
	action.Fields = append(action.Fields, fields...)
	start := time.Now()
	resp, events, err := c.do(ctx, action, list)
	if err != nil {
		s.log.Debug("AMI action failed", "action", name, "err", err)
		return nil, nil, err
	}
	s.log.Debug("AMI action answered", "action", name, "response", resp.Response(), "events", len(events), "took", time.Since(start))
	return resp, events, checkResponse(name, resp)
}

// fullyBooted reports whether the current connection saw FullyBooted.
func (s *Session) fullyBooted() bool {
	s.mu.Lock()
	c := s.cur
	s.mu.Unlock()
	return c != nil && c.fullyBooted.Load()
}

// Close logs off, closes the connection and stops reconnecting. It waits
// for the background loop to finish or ctx to end. Subscriptions see
// ErrClosed after their queued events.
func (s *Session) Close(ctx context.Context) error {
	s.mu.Lock()
	if !s.closed {
		s.closed = true
		close(s.done)
		s.broadcast()
	}
	s.mu.Unlock()
	s.subMu.Lock()
	subs := make([]*Subscription, 0, len(s.subs))
	for sub := range s.subs {
		subs = append(subs, sub)
	}
	s.subMu.Unlock()
	for _, sub := range subs {
		sub.Close()
	}
	select {
	case <-s.stopped:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("asteriskctl: close: %w", ctx.Err())
	}
}
