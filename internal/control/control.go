package control

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"time"
)

// SocketName is the socket's file name inside data_dir.
const SocketName = "control.sock"

// SocketPath returns the control socket of the agent using dataDir.
func SocketPath(dataDir string) string { return filepath.Join(dataDir, SocketName) }

// Request is one command to the agent.
type Request struct {
	Cmd  string `json:"cmd"`            // "status", "rollback", "resume", "sync", "vars" or "restore"
	Job  string `json:"job,omitempty"`  // rollback, resume, sync, restore
	To   uint64 `json:"to,omitempty"`   // rollback: target generation, 0 = previous good
	Hold bool   `json:"hold,omitempty"` // rollback on a push target: hold it there until resume
	Node string `json:"node,omitempty"` // vars: the node whose template values are asked for
	From string `json:"from,omitempty"` // restore: the archive's name, for logs and history; its bytes follow the request
}

// Response is the agent's answer.
type Response struct {
	Error      string          `json:"error,omitempty"`
	Status     json.RawMessage `json:"status,omitempty"`
	Generation uint64          `json:"generation,omitempty"`
	Vars       *NodeVars       `json:"vars,omitempty"` // vars
}

// NodeVars is what a node's templates see: its name, site and vars.
type NodeVars struct {
	Node string            `json:"node"`
	Site string            `json:"site,omitempty"`
	Vars map[string]string `json:"vars"`
}

// VarsHandler is the optional part of a Handler that answers "vars":
// the template values of this node or of a peer (pbxsync render --node).
type VarsHandler interface {
	Vars(node string) (NodeVars, error)
}

// Handler carries out requests.
type Handler interface {
	// Status returns a JSON-encodable status object.
	Status() any
	// Rollback rolls job back to generation to and returns the generation
	// the job is at afterwards; hold holds a push target there.
	Rollback(ctx context.Context, job string, to uint64, hold bool) (uint64, error)
	// Resume ends the hold of a push target.
	Resume(ctx context.Context, job string) error
	// SyncNow rescans job's tree and announces its newest generation now
	// (on a target: asks the source for it).
	SyncNow(ctx context.Context, job string) error
}

// Restorer is a Handler that also restores backups (pbxsync restore).
// The archive's bytes follow the request on the connection, up to the
// client's half-close: the agent needs no access to the file (its unit
// may have a private /tmp, no /home and a read-only file system).
type Restorer interface {
	// Restore applies the backup archive read from archive (called name
	// in logs) to job as a new generation and returns its number.
	Restore(ctx context.Context, job, name string, archive io.Reader) (uint64, error)
}

// Server serves the control socket.
type Server struct {
	path string
	ln   net.Listener
	h    Handler
	log  *slog.Logger
}

// Listen creates the socket at path with mode 0600. A stale socket left by
// a crashed agent is replaced; a socket with a live agent behind it is an
// error.
//
// The socket is bound inside a fresh directory of mode 0700 beside path,
// made 0600 and renamed into place, so nobody else can connect before its
// mode is set, and without a process-wide umask: changing that would race
// every file another goroutine creates meanwhile (applied files, store
// files, another in-process agent's socket) and could leave it changed.
func Listen(path string, h Handler, log *slog.Logger) (*Server, error) {
	if c, err := net.DialTimeout("unix", path, 200*time.Millisecond); err == nil {
		c.Close()
		return nil, fmt.Errorf("control socket %s: another agent is running with this data_dir", path)
	}
	private, err := os.MkdirTemp(filepath.Dir(path), ".cs") // short: a socket path has at most 107 bytes
	if err != nil {
		return nil, fmt.Errorf("control socket %s: %w", path, err)
	}
	defer os.RemoveAll(private)
	bound := filepath.Join(private, "s")
	ln, err := net.Listen("unix", bound)
	if err != nil {
		return nil, fmt.Errorf("control socket %s: %w", path, err)
	}
	ln.(*net.UnixListener).SetUnlinkOnClose(false) // Serve removes path
	if err := os.Chmod(bound, 0o600); err != nil {
		ln.Close()
		return nil, fmt.Errorf("control socket %s: %w", path, err)
	}
	if err := os.Rename(bound, path); err != nil { // replaces a stale socket
		ln.Close()
		return nil, fmt.Errorf("control socket %s: %w", path, err)
	}
	return &Server{path: path, ln: ln, h: h, log: log}, nil
}

// Serve answers requests until ctx is done, then removes the socket.
func (s *Server) Serve(ctx context.Context) {
	stop := context.AfterFunc(ctx, func() { s.ln.Close() })
	defer stop()
	defer os.Remove(s.path)
	for {
		c, err := s.ln.Accept()
		if err != nil {
			return
		}
		go s.serveConn(ctx, c)
	}
}

func (s *Server) serveConn(ctx context.Context, c net.Conn) {
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Minute))
	var req Request
	dec := json.NewDecoder(io.LimitReader(c, 1<<16))
	if err := dec.Decode(&req); err != nil {
		json.NewEncoder(c).Encode(Response{Error: "bad request: " + err.Error()})
		return
	}
	if req.Cmd == "restore" { // reads and applies a whole archive
		c.SetDeadline(time.Now().Add(6 * time.Hour))
	}
	var resp Response
	switch req.Cmd {
	case "status":
		b, err := json.Marshal(s.h.Status())
		if err != nil {
			resp.Error = err.Error()
		}
		resp.Status = b
	case "rollback":
		gen, err := s.h.Rollback(ctx, req.Job, req.To, req.Hold)
		if err != nil {
			resp.Error = err.Error()
		}
		resp.Generation = gen
	case "resume":
		if err := s.h.Resume(ctx, req.Job); err != nil {
			resp.Error = err.Error()
		}
	case "sync":
		if err := s.h.SyncNow(ctx, req.Job); err != nil {
			resp.Error = err.Error()
		}
	case "vars":
		vh, ok := s.h.(VarsHandler)
		if !ok {
			resp.Error = "this agent cannot tell template values"
			break
		}
		v, err := vh.Vars(req.Node)
		if err != nil {
			resp.Error = err.Error()
		} else {
			resp.Vars = &v
		}
	case "restore":
		r, ok := s.h.(Restorer)
		if !ok {
			resp.Error = "this agent cannot restore backups"
			break
		}
		// the archive follows the request's line (Encode ends it with a
		// newline), partly read ahead by the decoder
		body := bufio.NewReaderSize(io.MultiReader(dec.Buffered(), c), 64<<10)
		if b, err := body.Peek(1); err == nil && b[0] == '\n' {
			body.Discard(1)
		}
		gen, err := r.Restore(ctx, req.Job, req.From, body)
		if err != nil {
			resp.Error = err.Error()
		}
		resp.Generation = gen
	default:
		resp.Error = fmt.Sprintf("unknown command %q", req.Cmd)
	}
	if err := json.NewEncoder(c).Encode(resp); err != nil {
		s.log.Debug("control: cannot answer", "err", err)
	}
}

// ErrNoAgent is returned by Call when no agent listens on the socket.
var ErrNoAgent = errors.New("no agent is running")

// Call sends req to the agent listening at path and returns its response.
func Call(ctx context.Context, path string, req Request) (*Response, error) {
	return CallWith(ctx, path, req, nil)
}

// CallWith is Call that sends body's bytes after the request and then
// half-closes the connection (restore's archive).
func CallWith(ctx context.Context, path string, req Request, body io.Reader) (*Response, error) {
	var d net.Dialer
	c, err := d.DialContext(ctx, "unix", path)
	if err != nil {
		return nil, fmt.Errorf("%w (cannot connect to %s: %v)", ErrNoAgent, path, err)
	}
	defer c.Close()
	if dl, ok := ctx.Deadline(); ok {
		c.SetDeadline(dl)
	}
	if err := json.NewEncoder(c).Encode(req); err != nil {
		return nil, fmt.Errorf("control: send: %w", err)
	}
	if body != nil {
		if _, err := io.Copy(c, body); err != nil {
			return nil, fmt.Errorf("control: send: %w", err)
		}
		if uc, ok := c.(*net.UnixConn); ok {
			if err := uc.CloseWrite(); err != nil {
				return nil, fmt.Errorf("control: send: %w", err)
			}
		}
	}
	var resp Response
	if err := json.NewDecoder(io.LimitReader(c, 64<<20)).Decode(&resp); err != nil {
		return nil, fmt.Errorf("control: read answer: %w", err)
	}
	if resp.Error != "" {
		return &resp, errors.New(resp.Error)
	}
	return &resp, nil
}
