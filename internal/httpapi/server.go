package httpapi

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"pbxsync/internal/history"
	"pbxsync/internal/wire"
	"pbxsync/syncer"
)

// Source gives the agent's state to the endpoints.
type Source interface {
	// Status is what `pbxsync status --json` prints.
	Status() syncer.Status
	// Healthy reports nil when the agent and its local Asterisk are healthy.
	Healthy(ctx context.Context) error
}

// LocalStater is a Source that also tells what this node publishes about
// itself to its peers (Asterisk, free space, load): /api/v1/node.
type LocalStater interface {
	LocalState() *wire.State
}

// Actions are the state-changing requests of /api/v1: the agent's control
// handler, the same code the control socket (pbxsync rollback, resume,
// sync) runs.
type Actions interface {
	Rollback(ctx context.Context, job string, to uint64, hold bool) (uint64, error)
	Resume(ctx context.Context, job string) error
	SyncNow(ctx context.Context, job string) error
}

// Options configures the HTTP listener of [node] http.
type Options struct {
	Addr string // host:port
	// CertFile and KeyFile ([node] http_cert, http_key), both set: the
	// listener serves HTTPS.
	CertFile, KeyFile string
	Source            Source
	History           history.Reader // the agent's store: history, diff and conflicts (nil: those answer 503)
	Actions           Actions        // nil: actions answer 503
	// TokenFile holds the API token (see LoadOrCreateToken); it is read on
	// every request that needs it, so a rotated token works at once.
	TokenFile string
	Log       *slog.Logger
}

// Server is the HTTP listener.
type Server struct {
	ln      net.Listener
	srv     *http.Server
	opts    Options
	log     *slog.Logger
	tls     bool
	hostChk bool // bound to loopback only: refuse Host names that are not loopback (DNS rebinding)
	cop     *http.CrossOriginProtection
	streams chan struct{} // one token per open event stream

	nodeMu sync.Mutex
	node   *wire.State // last LocalState, shared by every stream and /api/v1/node
	nodeAt time.Time
}

// localState returns this node's own state, asking the agent at most
// every nodeEvery/2 however many pages are open (it pings the local
// Asterisk); nil when the Source cannot tell.
func (s *Server) localState() *wire.State {
	ls, ok := s.opts.Source.(LocalStater)
	if !ok {
		return nil
	}
	s.nodeMu.Lock()
	defer s.nodeMu.Unlock()
	if s.node == nil || time.Since(s.nodeAt) >= nodeEvery/2 {
		s.node, s.nodeAt = ls.LocalState(), time.Now()
	}
	return s.node
}

// maxStreams bounds the open /api/v1/events streams.
const maxStreams = 64

// Listen binds opts.Addr and prepares the handlers. Bound to an address
// other than loopback without TLS it logs a warning: the token of the
// actions would cross the network in clear.
func Listen(opts Options) (*Server, error) {
	log := opts.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	var tlsCfg *tls.Config
	if opts.CertFile != "" || opts.KeyFile != "" {
		cert, err := tls.LoadX509KeyPair(opts.CertFile, opts.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("http listener on %s: http_cert %s / http_key %s: %w", opts.Addr, opts.CertFile, opts.KeyFile, err)
		}
		tlsCfg = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	}
	ln, err := net.Listen("tcp", opts.Addr)
	if err != nil {
		return nil, fmt.Errorf("http listener on %s: %w", opts.Addr, err)
	}
	loopback := isLoopback(ln.Addr())
	if !loopback && tlsCfg == nil {
		log.Warn("the dashboard and /api/v1 are served without TLS on an address other than loopback: the API token crosses the network in clear; set [node] http_cert and http_key, or http = \"127.0.0.1:PORT\"", "http", opts.Addr)
	}
	if tlsCfg != nil {
		ln = tls.NewListener(ln, tlsCfg)
	}
	s := &Server{ln: ln, opts: opts, log: log, tls: tlsCfg != nil, hostChk: loopback, cop: http.NewCrossOriginProtection(), streams: make(chan struct{}, maxStreams)}

	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}), &collector{src: opts.Source})
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	mux.HandleFunc("GET /healthz", s.healthz)
	s.routes(mux)
	mux.Handle("/", dashboard())
	s.srv = &http.Server{Handler: s.guard(mux), ReadHeaderTimeout: 5 * time.Second, ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelWarn)}
	return s, nil
}

// Addr returns the bound address.
func (s *Server) Addr() net.Addr { return s.ln.Addr() }

// URL returns the base URL of the listener ("http://127.0.0.1:7421").
func (s *Server) URL() string {
	if s.tls {
		return "https://" + s.ln.Addr().String()
	}
	return "http://" + s.ln.Addr().String()
}

// Serve serves until ctx is done; open event streams end with it.
func (s *Server) Serve(ctx context.Context) error {
	s.srv.BaseContext = func(net.Listener) context.Context { return ctx }
	stop := context.AfterFunc(ctx, func() {
		sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		s.srv.Shutdown(sctx)
	})
	defer stop()
	if err := s.srv.Serve(s.ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

func (s *Server) healthz(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 3*time.Second)
	defer cancel()
	if err := s.opts.Source.Healthy(ctx); err != nil {
		http.Error(w, "unhealthy: "+err.Error(), http.StatusServiceUnavailable)
		return
	}
	fmt.Fprintln(w, "ok")
}

// guard sets the headers every answer carries and, on a listener bound to
// loopback, refuses a Host that is not a loopback name or address: a page
// of another site whose name an attacker points at 127.0.0.1 (DNS
// rebinding) cannot read the dashboard.
func (s *Server) guard(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("X-Frame-Options", "DENY")
		if s.hostChk && !loopbackHost(r.Host) {
			writeError(w, http.StatusMisdirectedRequest, fmt.Sprintf("host %q is not a loopback name: this listener is bound to loopback; open it as http://%s", r.Host, s.ln.Addr()))
			return
		}
		next.ServeHTTP(w, r)
	})
}

// isLoopback reports whether a bound address is a loopback address (not
// a wildcard, not an interface's).
func isLoopback(a net.Addr) bool {
	t, ok := a.(*net.TCPAddr)
	return ok && t.IP.IsLoopback()
}

// loopbackHost reports whether the Host header names loopback:
// "localhost", a name under .localhost, or a loopback address.
func loopbackHost(hostport string) bool {
	host := hostport
	if h, _, err := net.SplitHostPort(hostport); err == nil {
		host = h
	}
	if host == "localhost" || len(host) > 10 && host[len(host)-10:] == ".localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
