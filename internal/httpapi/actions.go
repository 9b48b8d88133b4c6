package httpapi

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strings"
	"time"
)

// CSRFHeader must be present (with the value "1") on every POST to
// /api/v1: a page of another origin cannot send a custom header without
// a CORS preflight, which this server never allows (docs/api.md).
const CSRFHeader = "X-Pbxsync-Csrf"

// actionTimeout bounds one action (a rollback waits for its apply).
const actionTimeout = 2 * time.Minute

// authorized checks the bearer token; on failure it answers 401 and
// returns false. The token is read from its file (a rotated one works at
// once) and compared in constant time; it is never logged.
func (s *Server) authorized(w http.ResponseWriter, r *http.Request) bool {
	presented, ok := bearer(r)
	valid := ""
	if s.opts.TokenFile != "" {
		tok, err := ReadToken(s.opts.TokenFile)
		if err != nil {
			s.log.Warn("api token unreadable; requests that need it are refused", "err", err)
		}
		valid = tok
	}
	if ok && tokenEqual(presented, valid) {
		return true
	}
	w.Header().Set("WWW-Authenticate", `Bearer realm="pbxsync"`)
	msg := "this needs the API token: send Authorization: Bearer TOKEN ('pbxsync token' on this node prints it)"
	if ok {
		msg = "invalid API token ('pbxsync token' on this node prints the valid one)"
	}
	writeError(w, http.StatusUnauthorized, msg)
	return false
}

// bearer returns the token of an Authorization: Bearer header.
func bearer(r *http.Request) (string, bool) {
	h := r.Header.Get("Authorization")
	if len(h) < 7 || !strings.EqualFold(h[:7], "bearer ") {
		return "", false
	}
	return strings.TrimSpace(h[7:]), true
}

// crossSiteSafe is the CSRF check of a POST that carries a valid token:
// the browser's Sec-Fetch-Site, else the Origin against Host, must say
// same origin (net/http's CrossOriginProtection), and the custom header
// CSRFHeader must be set. On failure it answers 403.
func (s *Server) crossSiteSafe(w http.ResponseWriter, r *http.Request) bool {
	if err := s.cop.Check(r); err != nil {
		writeError(w, http.StatusForbidden, "cross-origin request refused (Sec-Fetch-Site/Origin say another site sent it): "+err.Error())
		return false
	}
	if r.Header.Get(CSRFHeader) != "1" {
		writeError(w, http.StatusForbidden, "actions need the header "+CSRFHeader+": 1 (CSRF protection, see docs/api.md)")
		return false
	}
	return true
}

// action runs the checks every POST shares (token, then CSRF, then the
// job) and returns a context bounded by actionTimeout.
func (s *Server) action(w http.ResponseWriter, r *http.Request) (context.Context, context.CancelFunc, bool) {
	if !s.authorized(w, r) || !s.crossSiteSafe(w, r) || !s.knownJob(w, r.PathValue("job")) {
		return nil, nil, false
	}
	if s.opts.Actions == nil {
		writeError(w, http.StatusServiceUnavailable, "actions are not available on this listener")
		return nil, nil, false
	}
	ctx, cancel := context.WithTimeout(r.Context(), actionTimeout)
	return ctx, cancel, true
}

// rollbackRequest is the body of POST /api/v1/jobs/{job}/rollback.
type rollbackRequest struct {
	Generation uint64 `json:"generation"` // 0: the good one before the newest
	Hold       bool   `json:"hold"`       // push target: roll back and hold (pbxsync rollback --hold)
}

// actionResult is the answer of a successful action.
type actionResult struct {
	Job        string `json:"job"`
	Action     string `json:"action"`
	Generation uint64 `json:"generation,omitempty"` // rollback: the generation the job is at now
}

func (s *Server) postRollback(w http.ResponseWriter, r *http.Request) {
	ctx, cancel, ok := s.action(w, r)
	if !ok {
		return
	}
	defer cancel()
	var req rollbackRequest
	if ct, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type")); ct != "application/json" {
		writeError(w, http.StatusUnsupportedMediaType, `the body must be JSON (Content-Type: application/json): {"generation": N}`)
		return
	}
	dec := json.NewDecoder(io.LimitReader(r.Body, 4096))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		writeError(w, http.StatusBadRequest, `bad body, want {"generation": N} (optional "hold": true on a push target): `+err.Error())
		return
	}
	job := r.PathValue("job")
	gen, err := s.opts.Actions.Rollback(ctx, job, req.Generation, req.Hold)
	if err != nil {
		s.refused(w, "rollback", job, err)
		return
	}
	s.log.Info("api: job rolled back", "job", job, "to", req.Generation, "hold", req.Hold, "generation", gen, "remote", r.RemoteAddr)
	writeJSON(w, http.StatusOK, actionResult{Job: job, Action: "rollback", Generation: gen})
}

func (s *Server) postResume(w http.ResponseWriter, r *http.Request) {
	ctx, cancel, ok := s.action(w, r)
	if !ok {
		return
	}
	defer cancel()
	job := r.PathValue("job")
	if err := s.opts.Actions.Resume(ctx, job); err != nil {
		s.refused(w, "resume", job, err)
		return
	}
	s.log.Info("api: job resumed", "job", job, "remote", r.RemoteAddr)
	writeJSON(w, http.StatusOK, actionResult{Job: job, Action: "resume"})
}

func (s *Server) postSync(w http.ResponseWriter, r *http.Request) {
	ctx, cancel, ok := s.action(w, r)
	if !ok {
		return
	}
	defer cancel()
	job := r.PathValue("job")
	if err := s.opts.Actions.SyncNow(ctx, job); err != nil {
		s.refused(w, "sync", job, err)
		return
	}
	s.log.Info("api: job synced now", "job", job, "remote", r.RemoteAddr)
	writeJSON(w, http.StatusOK, actionResult{Job: job, Action: "sync"})
}

// refused answers an action the agent refused: 409 with its reason (504
// when it timed out).
func (s *Server) refused(w http.ResponseWriter, action, job string, err error) {
	code := http.StatusConflict
	if errors.Is(err, context.DeadlineExceeded) {
		code = http.StatusGatewayTimeout
	}
	s.log.Warn("api: action refused", "action", action, "job", job, "err", err)
	writeError(w, code, fmt.Sprintf("%s of job %s: %v", action, job, err))
}
