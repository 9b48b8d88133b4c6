package amisim

import (
	"math/rand/v2"
	"strings"
	"time"
)

// faults are the scripted misbehaviours. Action names are kept lower case;
// "*" means every action.
type faults struct {
	delays      map[string]time.Duration
	jitter      time.Duration
	failures    map[string]string
	drops       map[string]int
	refuseLogin bool
	split       bool
}

func key(action string) string {
	if action == "" {
		return "*"
	}
	return strings.ToLower(action)
}

// SetDelay makes the server wait d before answering action ("" or "*":
// every action). d ≤ 0 removes the delay.
func (s *Server) SetDelay(action string, d time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.faults.delays == nil {
		s.faults.delays = map[string]time.Duration{}
	}
	if d <= 0 {
		delete(s.faults.delays, key(action))
		return
	}
	s.faults.delays[key(action)] = d
}

// SetJitter adds a random delay in [0, d) before every answer. With
// Config.ParallelActions it reorders answers.
func (s *Server) SetJitter(d time.Duration) {
	s.mu.Lock()
	s.faults.jitter = d
	s.mu.Unlock()
}

// FailAction answers every following action named action with
// "Response: Error" and message; an empty message removes the fault.
func (s *Server) FailAction(action, message string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.faults.failures == nil {
		s.faults.failures = map[string]string{}
	}
	if message == "" {
		delete(s.faults.failures, key(action))
		return
	}
	s.faults.failures[key(action)] = message
}

// DropConnection cuts the next n answers to action ("" or "*": any action
// other than Login) in the middle and closes the connection.
func (s *Server) DropConnection(action string, n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.faults.drops == nil {
		s.faults.drops = map[string]int{}
	}
	if n <= 0 {
		delete(s.faults.drops, key(action))
		return
	}
	s.faults.drops[key(action)] = n
}

// RefuseLogin makes every login fail with "Authentication failed" while on.
func (s *Server) RefuseLogin(on bool) {
	s.mu.Lock()
	s.faults.refuseLogin = on
	s.mu.Unlock()
}

// SetSplitWrites makes the server write every byte in its own write, so
// answers arrive in many TCP segments.
func (s *Server) SetSplitWrites(on bool) {
	s.mu.Lock()
	s.faults.split = on
	s.mu.Unlock()
}

// ClearFaults removes every scripted fault.
func (s *Server) ClearFaults() {
	s.mu.Lock()
	s.faults = faults{}
	s.mu.Unlock()
}

func (s *Server) splitWrites() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.faults.split
}

// delayFor returns the delay before answering action.
func (s *Server) delayFor(action string) time.Duration {
	s.mu.Lock()
	defer s.mu.Unlock()
	d, ok := s.faults.delays[key(action)]
	if !ok {
		d = s.faults.delays["*"]
	}
	if s.faults.jitter > 0 {
		d += rand.N(s.faults.jitter)
	}
	return d
}

// failureFor returns the scripted error message for action, if any.
func (s *Server) failureFor(action string) (string, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	msg, ok := s.faults.failures[key(action)]
	if !ok {
		msg, ok = s.faults.failures["*"]
	}
	return msg, ok
}

// takeDrop reports whether the answer to action must be cut, using up one
// scripted drop.
func (s *Server) takeDrop(action string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, k := range []string{key(action), "*"} {
		if k == "*" && strings.EqualFold(action, "Login") {
			continue
		}
		if n := s.faults.drops[k]; n > 0 {
			if n == 1 {
				delete(s.faults.drops, k)
			} else {
				s.faults.drops[k] = n - 1
			}
			return true
		}
	}
	return false
}
