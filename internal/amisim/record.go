package amisim

import (
	"strings"
	"time"
)

// Action is one action the server received.
type Action struct {
	Conn    int64     // connection number, from 1
	Name    string    // the Action header
	Headers []Header  // all headers in order; Secret values are redacted
	At      time.Time // when it was read
}

// Get returns the value of the first header named key (case-insensitive).
func (a Action) Get(key string) string { return message(a.Headers).get(key) }

// record stores an action.
func (s *Server) record(c *conn, m message) {
	hs := make([]Header, len(m))
	for i, h := range m {
		if strings.EqualFold(h.Key, "Secret") || strings.EqualFold(h.Key, "Key") {
			h.Value = "********"
		}
		hs[i] = h
	}
	s.mu.Lock()
	s.records = append(s.records, Action{Conn: c.id, Name: m.get("Action"), Headers: hs, At: time.Now()})
	s.mu.Unlock()
}

// Actions returns a copy of every action received so far, in order.
func (s *Server) Actions() []Action {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Action, len(s.records))
	copy(out, s.records)
	return out
}

// Count returns how many actions named name (case-insensitive) were
// received whose headers match every key/value pair in kv (values compared
// case-insensitively). Count("Reload", "Module", "pbx_config.so") counts
// reloads of pbx_config.so.
func (s *Server) Count(name string, kv ...string) int {
	n := 0
	for _, a := range s.Actions() {
		if !strings.EqualFold(a.Name, name) {
			continue
		}
		ok := true
		for i := 0; i+1 < len(kv); i += 2 {
			if !strings.EqualFold(a.Get(kv[i]), kv[i+1]) {
				ok = false
				break
			}
		}
		if ok {
			n++
		}
	}
	return n
}

// ResetActions forgets the recorded actions.
func (s *Server) ResetActions() {
	s.mu.Lock()
	s.records = nil
	s.mu.Unlock()
}
