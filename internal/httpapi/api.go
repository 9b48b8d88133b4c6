package httpapi

import (
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strconv"

	"pbxsync/internal/history"
)

// Bounds of a content diff over the API: a diff shows files up to this
// size, and this many of them.
const (
	diffMaxBytes = 256 << 10
	diffMaxFiles = 50
)

// routes adds /api/v1 (docs/api.md).
func (s *Server) routes(mux *http.ServeMux) {
	mux.HandleFunc("GET /api/v1/status", s.getStatus)
	mux.HandleFunc("GET /api/v1/node", s.getNode)
	mux.HandleFunc("GET /api/v1/jobs/{job}/history", s.getHistory)
	mux.HandleFunc("GET /api/v1/jobs/{job}/diff", s.getDiff)
	mux.HandleFunc("GET /api/v1/jobs/{job}/conflicts", s.getConflicts)
	mux.HandleFunc("GET /api/v1/events", s.events)
	mux.HandleFunc("GET /api/v1/token", s.checkToken)
	mux.HandleFunc("POST /api/v1/jobs/{job}/rollback", s.postRollback)
	mux.HandleFunc("POST /api/v1/jobs/{job}/resume", s.postResume)
	mux.HandleFunc("POST /api/v1/jobs/{job}/sync", s.postSync)
	mux.HandleFunc("/api/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, fmt.Sprintf("no endpoint %s %s (docs/api.md lists them)", r.Method, r.URL.Path))
	})
}

// apiError is the body of every error answer.
type apiError struct {
	Error string `json:"error"`
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false)
	enc.Encode(v)
}

func writeError(w http.ResponseWriter, code int, msg string) {
	writeJSON(w, code, apiError{Error: msg})
}

// getStatus answers what `pbxsync status --json` prints.
func (s *Server) getStatus(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, s.opts.Source.Status())
}

// getNode answers what this node publishes about itself to its peers.
func (s *Server) getNode(w http.ResponseWriter, r *http.Request) {
	st := s.localState()
	if st == nil {
		writeError(w, http.StatusServiceUnavailable, "this node's own state is not available")
		return
	}
	writeJSON(w, http.StatusOK, st)
}

// knownJob reports whether the agent runs job; else it answers 404.
func (s *Server) knownJob(w http.ResponseWriter, job string) bool {
	st := s.opts.Source.Status()
	var names []string
	for _, j := range st.Jobs {
		if j.Name == job {
			return true
		}
		names = append(names, j.Name)
	}
	slices.Sort(names)
	writeError(w, http.StatusNotFound, fmt.Sprintf("no job %q on node %s (jobs: %v)", job, st.Node, names))
	return false
}

// readable reports whether the store can be read for job, a job the
// agent runs; else it answers 404 or 503.
func (s *Server) readable(w http.ResponseWriter, job, what string) bool {
	if !s.knownJob(w, job) {
		return false
	}
	if s.opts.History == nil {
		writeError(w, http.StatusServiceUnavailable, "no store to read the "+what+" from")
		return false
	}
	return true
}

// getHistory answers what `pbxsync history --json` prints.
func (s *Server) getHistory(w http.ResponseWriter, r *http.Request) {
	job := r.PathValue("job")
	if !s.readable(w, job, "history") {
		return
	}
	gens, err := history.List(s.opts.History, job)
	if err != nil {
		writeError(w, http.StatusInternalServerError, err.Error())
		return
	}
	writeJSON(w, http.StatusOK, gens)
}

// getConflicts answers a mesh job's conflict records as `pbxsync
// conflicts --json` prints them, without a postgres job's losing rows:
// content, which may hold secrets, and this endpoint needs no token.
func (s *Server) getConflicts(w http.ResponseWriter, r *http.Request) {
	job := r.PathValue("job")
	if !s.readable(w, job, "conflicts") {
		return
	}
	cs, err := history.Conflicts(s.opts.History, job, false)
	if err != nil {
		writeError(w, http.StatusInternalServerError, err.Error())
		return
	}
	writeJSON(w, http.StatusOK, cs)
}

// getDiff answers what changed between generations from and to of a job
// (`pbxsync diff`); content=1 adds the unified diffs of the files, which
// needs the token (file content may hold secrets, e.g. SIP passwords).
func (s *Server) getDiff(w http.ResponseWriter, r *http.Request) {
	job := r.PathValue("job")
	q := r.URL.Query()
	var gens [2]uint64
	for i, k := range []string{"from", "to"} {
		n, err := strconv.ParseUint(q.Get(k), 10, 64)
		if err != nil {
			writeError(w, http.StatusBadRequest, fmt.Sprintf("query parameter %s=%q: want a generation number", k, q.Get(k)))
			return
		}
		gens[i] = n
	}
	content := q.Get("content") == "1"
	if content && !s.authorized(w, r) {
		return
	}
	if !s.readable(w, job, "history") {
		return
	}
	changes, err := history.Compare(r.Context(), s.opts.History, job, gens[0], gens[1], history.Options{Content: content, MaxBytes: diffMaxBytes, MaxFiles: diffMaxFiles})
	if err != nil {
		writeError(w, http.StatusNotFound, err.Error())
		return
	}
	writeJSON(w, http.StatusOK, changes)
}

// checkToken answers 204 to a valid token, 401 otherwise: the dashboard
// asks it when a token is entered.
func (s *Server) checkToken(w http.ResponseWriter, r *http.Request) {
	if s.authorized(w, r) {
		w.WriteHeader(http.StatusNoContent)
	}
}
