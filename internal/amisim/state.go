package amisim

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// findModule returns the loaded module named name, with or without ".so"
// (case-insensitive, as Asterisk's loader matches).
func (s *Server) findModule(name string) (string, bool) {
	if name == "" {
		return "", false
	}
	want := strings.TrimSuffix(strings.ToLower(name), ".so")
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, m := range s.st.modules {
		if strings.TrimSuffix(strings.ToLower(m), ".so") == want {
			return m, true
		}
	}
	return "", false
}

// reload reloads module ("" = every module) and returns Asterisk's error
// message, or "" for success.
func (s *Server) reload(module string) string {
	var targets []string
	if module == "" {
		s.mu.Lock()
		targets = append(targets, s.st.modules...)
		s.mu.Unlock()
	} else {
		m, ok := s.findModule(module)
		if s.cfg.Transcript != nil && len(s.cfg.Transcript.entriesFor(module)) > 0 {
			return s.replayedReload(module, ok)
		}
		if !ok {
			return "No such module"
		}
		targets = []string{m}
	}
	if !s.reloadMu.TryLock() {
		return "A reload is in progress"
	}
	s.reloading.Store(true)
	defer s.reloadMu.Unlock()
	defer s.reloading.Store(false)
	if !s.sleep(s.cfg.ReloadDuration, nil) {
		return "Asterisk is shutting down"
	}
	failed := false
	for _, m := range targets {
		s.logLine("VERBOSE", "loader.c", fmt.Sprintf("Reloading module '%s'", m))
		if s.checkFiles(m) && strings.EqualFold(m, "pbx_config.so") {
			failed = true
		}
	}
	if failed {
		return "An unknown error occurred"
	}
	s.mu.Lock()
	s.st.lastReload = time.Now()
	s.mu.Unlock()
	return ""
}

// replayedReload runs a reload of a module the transcript has: the reload
// lock and duration as usual, the answer and log lines as recorded.
func (s *Server) replayedReload(module string, loaded bool) string {
	if loaded {
		if !s.reloadMu.TryLock() {
			return "A reload is in progress"
		}
		defer s.reloadMu.Unlock()
		if !s.sleep(s.cfg.ReloadDuration, nil) {
			return "Asterisk is shutting down"
		}
	}
	resp, _ := s.replayReload(module, loaded)
	if strings.EqualFold(Get(resp, "Response"), "Success") {
		s.mu.Lock()
		s.st.lastReload = time.Now()
		s.mu.Unlock()
		return ""
	}
	return Get(resp, "Message")
}

// checkFiles looks for the broken marker in the configuration files of
// module, writes a parse-error WARNING for each hit, and reports whether
// there was one.
func (s *Server) checkFiles(module string) bool {
	if s.cfg.ConfigDir == "" {
		return false
	}
	broken := false
	for _, pat := range s.cfg.ModuleFiles[module] {
		paths, _ := filepath.Glob(filepath.Join(s.cfg.ConfigDir, pat))
		for _, p := range paths {
			b, err := os.ReadFile(p)
			if err != nil {
				continue
			}
			i := bytes.Index(b, []byte(s.cfg.BrokenMarker))
			if i < 0 {
				continue
			}
			broken = true
			line := 1 + bytes.Count(b[:i], []byte("\n"))
			s.logLine("WARNING", "config.c:2290 process_text_line",
				fmt.Sprintf("parse error: No category context for line %d of %s", line, p))
		}
	}
	return broken
}

// logLine appends one Asterisk-style line to the log file:
// "[2006-01-02 15:04:05] WARNING[4242]: config.c:2290 process_text_line: …".
func (s *Server) logLine(level, where, msg string) {
	if s.cfg.LogPath == "" {
		return
	}
	s.writeLog(fmt.Sprintf("[%s] %s[4242]: %s: %s\n", time.Now().Format("2006-01-02 15:04:05"), level, where, msg))
}

// writeLog appends line to the log file.
func (s *Server) writeLog(line string) {
	if s.cfg.LogPath == "" {
		return
	}
	s.logMu.Lock()
	defer s.logMu.Unlock()
	f, err := os.OpenFile(s.cfg.LogPath, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		s.log.Warn("write log", "err", err)
		return
	}
	defer f.Close()
	if _, err := f.WriteString(line); err != nil {
		s.log.Warn("write log", "err", err)
	}
}

// BeginReload starts a reload that is not driven by AMI (as from the CLI)
// and holds the reload lock for d, so AMI reloads meanwhile are answered
// "A reload is in progress". It reports false when a reload already runs or
// the server is closed.
func (s *Server) BeginReload(d time.Duration) bool {
	if !s.reloadMu.TryLock() {
		return false
	}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		s.reloadMu.Unlock()
		return false
	}
	s.wg.Add(1)
	s.mu.Unlock()
	s.reloading.Store(true)
	go func() {
		defer s.wg.Done()
		defer s.reloadMu.Unlock()
		defer s.reloading.Store(false)
		s.sleep(d, nil)
	}()
	return true
}

// Reloading reports whether a reload runs now (it holds the reload lock),
// so a test can send its next action while it certainly does.
func (s *Server) Reloading() bool { return s.reloading.Load() }

// SetModuleLoaded loads or unloads a module (for ModuleCheck and Reload).
// Its name is taken as given; matching ignores case and ".so".
func (s *Server) SetModuleLoaded(name string, loaded bool) {
	want := strings.TrimSuffix(strings.ToLower(name), ".so")
	s.mu.Lock()
	defer s.mu.Unlock()
	out := s.st.modules[:0]
	for _, m := range s.st.modules {
		if strings.TrimSuffix(strings.ToLower(m), ".so") != want {
			out = append(out, m)
		}
	}
	s.st.modules = out
	if loaded {
		s.st.modules = append(s.st.modules, name)
	}
}

// LastReload returns the time of the last successful reload (the start
// time when there was none).
func (s *Server) LastReload() time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.st.lastReload
}

// SetChannels sets the number of active channels (CoreShowChannels,
// CoreCurrentCalls). Setting 0 runs a restart that waits for inactivity.
func (s *Server) SetChannels(n int) {
	s.mu.Lock()
	s.st.channels = max(n, 0)
	pending := s.st.pendingRestart != "" && n <= 0
	s.mu.Unlock()
	if pending {
		s.restart()
	}
}

// Channels returns the number of active channels.
func (s *Server) Channels() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.st.channels
}

// SetLegacyCommand selects the Command answer format: true for
// "Response: Follows" … "--END COMMAND--" (Asterisk < 14), false for
// "Output:" lines.
func (s *Server) SetLegacyCommand(on bool) {
	s.mu.Lock()
	s.st.legacyCommand = on
	s.mu.Unlock()
}

// SetCommand scripts the answer to the CLI command cmd (compared after
// collapsing white space): its output lines, and whether it fails. It
// overrides the built-in commands.
func (s *Server) SetCommand(cmd string, output []string, fail bool) {
	cmd = strings.Join(strings.Fields(cmd), " ")
	s.mu.Lock()
	s.st.commands[cmd] = scripted{output: append([]string(nil), output...), fail: fail}
	s.mu.Unlock()
}

// Var returns a global variable (set with the Setvar action).
func (s *Server) Var(name string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.st.vars[name]
}

// Restarts returns how many restarts were completed (the manager is back
// up after each).
func (s *Server) Restarts() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.st.restarts
}

// PendingRestart returns the mode of a restart waiting for the channels to
// end, or "".
func (s *Server) PendingRestart() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.st.pendingRestart
}

// deferRestart records a restart that waits for the channels to end and
// reports true, or reports false when there are no channels.
func (s *Server) deferRestart(mode string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.st.channels == 0 {
		return false
	}
	s.st.pendingRestart = mode
	return true
}

// restart sends the Shutdown event, goes down for RestartDuration and comes
// back with a new start-up time.
func (s *Server) restart() {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return
	}
	s.st.pendingRestart = ""
	s.wg.Add(1)
	s.mu.Unlock()
	go func() {
		defer s.wg.Done()
		if !s.sleep(10*time.Millisecond, nil) {
			return
		}
		s.Emit("Shutdown", H("Privilege", "system,all"), H("Shutdown", "Cleanly"), H("Restart", "True"))
		_ = s.Down()
		if !s.sleep(s.cfg.RestartDuration, nil) {
			return
		}
		now := time.Now()
		s.mu.Lock()
		s.st.startup, s.st.lastReload, s.st.channels = now, now, 0
		s.mu.Unlock()
		if err := s.Up(); err != nil {
			s.log.Warn("come back after restart", "err", err)
			return
		}
		s.mu.Lock()
		s.st.restarts++
		s.mu.Unlock()
	}()
}

// Emit sends an event to every logged-in connection and returns how many
// received it. Headers are written in order after "Event: name"; keys may
// hold digits, underscores and other punctuation.
func (s *Server) Emit(name string, headers ...Header) int {
	var r reply
	r.msg(append([]Header{H("Event", name)}, headers...)...)
	s.mu.Lock()
	conns := make([]*conn, 0, len(s.conns))
	for c := range s.conns {
		conns = append(conns, c)
	}
	s.mu.Unlock()
	n := 0
	for _, c := range conns {
		if c.isAuthed() && c.write(r.Bytes(), false) == nil {
			n++
		}
	}
	return n
}

// Sessions returns the number of logged-in connections.
func (s *Server) Sessions() int {
	s.mu.Lock()
	conns := make([]*conn, 0, len(s.conns))
	for c := range s.conns {
		conns = append(conns, c)
	}
	s.mu.Unlock()
	n := 0
	for _, c := range conns {
		if c.isAuthed() {
			n++
		}
	}
	return n
}
