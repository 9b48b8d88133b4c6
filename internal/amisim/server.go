package amisim

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Banner is the greeting a Server sends on every connection.
const Banner = "Asterisk Call Manager/7.0.3"

// Config configures a Server. Zero fields take the defaults named.
type Config struct {
	Addr     string // listen address (default "127.0.0.1:0": a random port)
	Username string // AMI user (default "admin")
	Secret   string // its secret (default "secret")

	AsteriskVersion string // CoreSettings AsteriskVersion (default "20.5.0")
	AMIVersion      string // CoreSettings AMIversion (default "7.0.3")
	SystemName      string // CoreSettings SystemName

	// ConfigDir holds the configuration files reloads check for the
	// error marker; "" disables the check.
	ConfigDir string
	// LogPath is the file parse errors and reload notes are appended to;
	// "" disables logging.
	LogPath string
	// BrokenMarker marks a configuration file as broken (default "BROKEN").
	BrokenMarker string
	// ModuleFiles maps a module to the file name globs (in ConfigDir) it
	// reads (default DefaultModuleFiles()).
	ModuleFiles map[string][]string
	// Modules are the loaded modules (default: the keys of ModuleFiles plus
	// a few modules without configuration, see DefaultModules(); with a
	// Transcript, the modules that ran when it was recorded).
	Modules []string
	// Transcript, when set, makes Reload and ModuleCheck of the modules it
	// holds answer and log as the recorded real Asterisk did (see
	// [Transcript] and [Recorded]); other modules behave as without it.
	Transcript *Transcript

	// ReloadDuration is how long a reload runs; reloads asked for meanwhile
	// are answered "A reload is in progress".
	ReloadDuration time.Duration
	// RestartDuration is how long a restart keeps the manager down
	// (default 100ms).
	RestartDuration time.Duration

	// LegacyCommand answers Command in the format of Asterisk < 14
	// ("Response: Follows" … "--END COMMAND--"); it can be changed later
	// with SetLegacyCommand.
	LegacyCommand bool
	// ParallelActions handles the actions of one connection concurrently,
	// so answers may come back in another order than the actions. A real
	// Asterisk answers one connection's actions in order; this exists to
	// test ActionID correlation.
	ParallelActions bool
	// CloseOnLoginFailure closes the connection after "Authentication
	// failed". By default the connection stays open.
	CloseOnLoginFailure bool

	Logger *slog.Logger // default: discard
}

// DefaultModuleFiles returns the simulator's default map from module to
// the configuration files (globs) it reads.
func DefaultModuleFiles() map[string][]string {
	return map[string][]string{
		"pbx_config.so":                       {"extensions.conf"},
		"pbx_ael.so":                          {"extensions.ael"},
		"pbx_lua.so":                          {"extensions.lua"},
		"res_pjsip.so":                        {"pjsip.conf", "pjsip_*.conf"},
		"res_pjsip_config_wizard.so":          {"pjsip_wizard.conf"},
		"chan_sip.so":                         {"sip.conf"},
		"chan_iax2.so":                        {"iax.conf"},
		"app_voicemail.so":                    {"voicemail.conf"},
		"app_queue.so":                        {"queues.conf"},
		"res_musiconhold.so":                  {"musiconhold.conf"},
		"features":                            {"features.conf"},
		"manager":                             {"manager.conf"},
		"logger":                              {"logger.conf"},
		"cdr":                                 {"cdr.conf"},
		"cdr_csv.so":                          {"cdr_custom.conf"},
		"cel":                                 {"cel.conf"},
		"app_confbridge.so":                   {"confbridge.conf"},
		"res_rtp_asterisk.so":                 {"rtp.conf"},
		"http":                                {"http.conf"},
		"indications":                         {"indications.conf"},
		"res_pgsql.so":                        {"res_pgsql.conf"},
		"res_odbc.so":                         {"res_odbc.conf"},
		"res_config_pgsql.so":                 {"res_pgsql.conf"},
		"res_pjsip_endpoint_identifier_ip.so": {"pjsip.conf"},
	}
}

// DefaultModules returns the loaded modules of a default Server.
func DefaultModules() []string {
	var ms []string
	for m := range DefaultModuleFiles() {
		ms = append(ms, m)
	}
	return append(ms, "chan_pjsip.so", "app_dial.so", "res_pjsip_session.so", "func_callerid.so")
}

func (c Config) withDefaults() Config {
	if c.Addr == "" {
		c.Addr = "127.0.0.1:0"
	}
	if c.Username == "" {
		c.Username = "admin"
	}
	if c.Secret == "" {
		c.Secret = "secret"
	}
	if c.AsteriskVersion == "" && c.Transcript != nil {
		c.AsteriskVersion = c.Transcript.Version
	}
	if c.AsteriskVersion == "" {
		c.AsteriskVersion = "20.5.0"
	}
	if c.AMIVersion == "" && c.Transcript != nil {
		c.AMIVersion = c.Transcript.AMI
	}
	if c.AMIVersion == "" {
		c.AMIVersion = "7.0.3"
	}
	if c.BrokenMarker == "" {
		c.BrokenMarker = "BROKEN"
	}
	if c.ModuleFiles == nil {
		c.ModuleFiles = DefaultModuleFiles()
	}
	if c.Modules == nil && c.Transcript != nil {
		c.Modules = c.Transcript.Modules()
		for _, m := range DefaultModules() {
			if len(c.Transcript.entriesFor(m)) == 0 {
				c.Modules = append(c.Modules, m)
			}
		}
	}
	if c.Modules == nil {
		seen := map[string]bool{}
		for m := range c.ModuleFiles {
			c.Modules = append(c.Modules, m)
			seen[m] = true
		}
		for _, m := range DefaultModules() {
			if !seen[m] {
				c.Modules = append(c.Modules, m)
			}
		}
	}
	if c.RestartDuration <= 0 {
		c.RestartDuration = 100 * time.Millisecond
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return c
}

// Server is a running AMI simulator. Create it with Start.
type Server struct {
	cfg  Config
	log  *slog.Logger
	addr string

	done      chan struct{} // closed by Close
	wg        sync.WaitGroup
	reloadMu  sync.Mutex  // held while a reload runs
	reloading atomic.Bool // set while reloadMu is held (Reloading)
	logMu     sync.Mutex  // serializes writes to the log file

	mu      sync.Mutex
	ln      net.Listener // nil while down
	conns   map[*conn]struct{}
	connSeq int64
	closed  bool
	st      state
	faults  faults
	records []Action
}

// state is the simulated Asterisk.
type state struct {
	startup, lastReload time.Time
	channels            int
	vars                map[string]string
	restarts            int
	pendingRestart      string // restart mode waiting for calls to end
	commands            map[string]scripted
	legacyCommand       bool
	modules             []string // loaded modules
}

type scripted struct {
	output []string
	fail   bool
}

// Start listens on cfg.Addr and serves AMI until Close.
func Start(cfg Config) (*Server, error) {
	cfg = cfg.withDefaults()
	ln, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		return nil, fmt.Errorf("amisim: listen: %w", err)
	}
	now := time.Now()
	s := &Server{
		cfg:   cfg,
		log:   cfg.Logger.With("component", "amisim"),
		addr:  ln.Addr().String(),
		done:  make(chan struct{}),
		ln:    ln,
		conns: make(map[*conn]struct{}),
		st: state{
			startup:       now,
			lastReload:    now,
			vars:          make(map[string]string),
			commands:      make(map[string]scripted),
			legacyCommand: cfg.LegacyCommand,
			modules:       append([]string(nil), cfg.Modules...),
		},
	}
	s.wg.Add(1)
	go s.accept(ln)
	return s, nil
}

// Addr returns the host:port the server listens on (the same after Down and
// Up).
func (s *Server) Addr() string { return s.addr }

// Config returns the configuration with defaults applied.
func (s *Server) Config() Config { return s.cfg }

func (s *Server) accept(ln net.Listener) {
	defer s.wg.Done()
	for {
		nc, err := ln.Accept()
		if err != nil {
			if !errors.Is(err, net.ErrClosed) {
				s.log.Warn("accept", "err", err)
			}
			return
		}
		s.mu.Lock()
		if s.closed || s.ln != ln {
			s.mu.Unlock()
			_ = nc.Close()
			continue
		}
		s.connSeq++
		c := &conn{id: s.connSeq, nc: nc, srv: s, closed: make(chan struct{})}
		s.conns[c] = struct{}{}
		s.wg.Add(1)
		s.mu.Unlock()
		go c.serve()
	}
}

// Down closes the listener and every connection, as when Asterisk or its
// manager goes away. Connects are refused until Up.
func (s *Server) Down() error {
	s.mu.Lock()
	ln := s.ln
	s.ln = nil
	conns := make([]*conn, 0, len(s.conns))
	for c := range s.conns {
		conns = append(conns, c)
	}
	s.mu.Unlock()
	var err error
	if ln != nil {
		err = ln.Close()
	}
	for _, c := range conns {
		c.close()
	}
	return err
}

// Up listens again on the same address after Down. It is a no-op when the
// server is up.
func (s *Server) Up() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return errors.New("amisim: server closed")
	}
	if s.ln != nil {
		return nil
	}
	var ln net.Listener
	var err error
	for range 50 { // the port may take a moment to be free again
		ln, err = net.Listen("tcp", s.addr)
		if err == nil {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	if err != nil {
		return fmt.Errorf("amisim: listen again on %s: %w", s.addr, err)
	}
	s.ln = ln
	s.wg.Add(1)
	go s.accept(ln)
	return nil
}

// IsUp reports whether the server listens.
func (s *Server) IsUp() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.ln != nil
}

// Close stops the server: listener, connections, delayed answers and
// pending restarts. It waits for its goroutines or ctx.
func (s *Server) Close(ctx context.Context) error {
	s.mu.Lock()
	if !s.closed {
		s.closed = true
		close(s.done)
	}
	s.mu.Unlock()
	err := s.Down()
	if errors.Is(err, net.ErrClosed) {
		err = nil
	}
	waited := make(chan struct{})
	go func() {
		s.wg.Wait()
		close(waited)
	}()
	select {
	case <-waited:
		return err
	case <-ctx.Done():
		return fmt.Errorf("amisim: close: %w", ctx.Err())
	}
}

// sleep waits d unless the server or c closes first; it reports whether
// the full time passed.
func (s *Server) sleep(d time.Duration, c *conn) bool {
	if d <= 0 {
		return true
	}
	t := time.NewTimer(d)
	defer t.Stop()
	var cc <-chan struct{}
	if c != nil {
		cc = c.closed
	}
	select {
	case <-t.C:
		return true
	case <-s.done:
		return false
	case <-cc:
		return false
	}
}

// conn is one client connection.
type conn struct {
	id     int64
	nc     net.Conn
	srv    *Server
	wmu    sync.Mutex
	mu     sync.Mutex
	authed bool
	once   sync.Once
	closed chan struct{}
}

func (c *conn) close() {
	c.once.Do(func() {
		close(c.closed)
		_ = c.nc.Close()
	})
}

func (c *conn) isAuthed() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.authed
}

func (c *conn) setAuthed(v bool) {
	c.mu.Lock()
	c.authed = v
	c.mu.Unlock()
}

// write sends b, byte by byte when split writes are on. With drop, only the
// first half is sent and the connection is closed.
func (c *conn) write(b []byte, drop bool) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	select {
	case <-c.closed:
		return net.ErrClosed
	default:
	}
	if drop {
		b = b[:len(b)/2]
	}
	_ = c.nc.SetWriteDeadline(time.Now().Add(10 * time.Second))
	var err error
	if c.srv.splitWrites() {
		for i := range b {
			if _, err = c.nc.Write(b[i : i+1]); err != nil {
				break
			}
		}
	} else {
		_, err = c.nc.Write(b)
	}
	if drop || err != nil {
		c.close()
	}
	return err
}

func (c *conn) serve() {
	s := c.srv
	var inflight sync.WaitGroup
	defer func() {
		c.close()
		inflight.Wait()
		s.mu.Lock()
		delete(s.conns, c)
		s.mu.Unlock()
		s.wg.Done()
	}()
	if err := c.write([]byte(Banner+"\r\n"), false); err != nil {
		return
	}
	br := bufio.NewReaderSize(c.nc, maxActionLine)
	for {
		m, err := readAction(br)
		if err != nil {
			if !errors.Is(err, io.EOF) && !errors.Is(err, net.ErrClosed) {
				s.log.Debug("read action", "conn", c.id, "err", err)
			}
			return
		}
		if s.cfg.ParallelActions && !strings.EqualFold(m.get("Action"), "Login") {
			inflight.Add(1)
			go func() {
				defer inflight.Done()
				s.handle(c, m)
			}()
			continue
		}
		if !s.handle(c, m) {
			return
		}
	}
}
