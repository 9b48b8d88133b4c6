package amisim

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// handle answers one action. It returns false when the connection must be
// closed afterwards.
func (s *Server) handle(c *conn, m message) bool {
	s.record(c, m)
	action := m.get("Action")
	id := m.get("ActionID")
	if !s.sleep(s.delayFor(action), c) {
		return false
	}
	var r reply
	keep := true
	var after func()
	lower := strings.ToLower(action)
	switch {
	case action == "":
		r.error(id, "Missing action in request")
	case !c.isAuthed() && lower != "login" && lower != "logoff" && lower != "challenge":
		r.error(id, "Permission denied")
	default:
		if msg, ok := s.failureFor(action); ok {
			r.error(id, msg)
			break
		}
		keep, after = s.dispatch(c, lower, id, m, &r)
	}
	drop := s.takeDrop(action)
	if err := c.write(r.Bytes(), drop); err != nil || drop {
		return false
	}
	if after != nil {
		after()
	}
	if !keep {
		c.close()
	}
	return keep
}

// dispatch runs a known action.
func (s *Server) dispatch(c *conn, action, id string, m message, r *reply) (keep bool, after func()) {
	switch action {
	case "login":
		return s.login(c, id, m, r), nil
	case "logoff":
		r.response(id, "Goodbye", H("Message", "Thanks for all the fish."))
		return false, nil
	case "challenge":
		r.error(id, "Must specify AuthType")
	case "ping":
		now := time.Now()
		r.response(id, "Success", H("Ping", "Pong"), H("Timestamp", fmt.Sprintf("%d.%06d", now.Unix(), now.Nanosecond()/1000)))
	case "corestatus":
		s.mu.Lock()
		st := s.st
		s.mu.Unlock()
		r.response(id, "Success",
			H("CoreStartupDate", st.startup.Format("2006-01-02")),
			H("CoreStartupTime", st.startup.Format("15:04:05")),
			H("CoreReloadDate", st.lastReload.Format("2006-01-02")),
			H("CoreReloadTime", st.lastReload.Format("15:04:05")),
			H("CoreCurrentCalls", strconv.Itoa(st.channels)))
	case "coresettings":
		r.response(id, "Success",
			H("AMIversion", s.cfg.AMIVersion),
			H("AsteriskVersion", s.cfg.AsteriskVersion),
			H("SystemName", s.cfg.SystemName),
			H("CoreMaxCalls", "0"),
			H("CoreMaxLoadAvg", "0.000000"),
			H("CoreRunUser", "asterisk"),
			H("CoreRunGroup", "asterisk"),
			H("CoreMaxFilehandles", "0"),
			H("CoreRealTimeEnabled", "No"),
			H("CoreCDRenabled", "Yes"),
			H("CoreHTTPenabled", "No"))
	case "reload":
		if msg := s.reload(m.get("Module")); msg != "" {
			r.error(id, msg)
		} else {
			r.success(id, "Module Reloaded")
		}
	case "modulecheck":
		_, ok := s.findModule(m.get("Module"))
		if s.cfg.Transcript != nil {
			if resp, found := s.replayModuleCheck(m.get("Module"), ok); found {
				r.response(id, Get(resp, "Response"), without(resp, "Response")...)
				break
			}
		}
		if ok {
			r.response(id, "Success", H("Version", ""))
		} else {
			r.error(id, "Module not loaded")
		}
	case "command":
		after = s.command(id, m.get("Command"), r)
	case "coreshowchannels":
		s.coreShowChannels(id, r)
	case "getvar":
		name := m.get("Variable")
		if name == "" {
			r.error(id, "No variable specified")
			break
		}
		s.mu.Lock()
		v := s.st.vars[name]
		s.mu.Unlock()
		r.response(id, "Success", H("Variable", name), H("Value", v))
	case "setvar":
		name := m.get("Variable")
		if name == "" {
			r.error(id, "No variable specified")
			break
		}
		s.mu.Lock()
		s.st.vars[name] = m.get("Value")
		s.mu.Unlock()
		r.success(id, "Variable Set")
	default:
		r.error(id, fmt.Sprintf("Invalid/unknown command: %s. Use Action: ListCommands to show available commands.", m.get("Action")))
	}
	return true, after
}

// login checks the credentials; it returns false when the connection must
// close.
func (s *Server) login(c *conn, id string, m message, r *reply) bool {
	if c.isAuthed() {
		r.success(id, "Already authenticated")
		return true
	}
	s.mu.Lock()
	refuse := s.faults.refuseLogin
	s.mu.Unlock()
	if refuse || m.get("Username") != s.cfg.Username || m.get("Secret") != s.cfg.Secret {
		s.log.Info("login refused", "conn", c.id, "user", m.get("Username"))
		r.error(id, "Authentication failed")
		return !s.cfg.CloseOnLoginFailure
	}
	c.setAuthed(true)
	r.success(id, "Authentication accepted")
	s.mu.Lock()
	st := s.st
	s.mu.Unlock()
	r.msg(H("Event", "FullyBooted"), H("Privilege", "system,all"),
		H("Uptime", strconv.Itoa(int(time.Since(st.startup).Seconds()))),
		H("LastReload", strconv.Itoa(int(time.Since(st.lastReload).Seconds()))),
		H("Status", "Fully Booted"))
	return true
}

// coreShowChannels writes the list answer of CoreShowChannels.
func (s *Server) coreShowChannels(id string, r *reply) {
	s.mu.Lock()
	n := s.st.channels
	s.mu.Unlock()
	r.response(id, "Success", H("EventList", "start"), H("Message", "Channels will follow"))
	for i := range n {
		r.msg(H("Event", "CoreShowChannel"), H("ActionID", id),
			H("Channel", fmt.Sprintf("PJSIP/%d-%08x", 100+i%900, i+1)),
			H("ChannelState", "6"), H("ChannelStateDesc", "Up"),
			H("CallerIDNum", strconv.Itoa(100+i%900)), H("CallerIDName", fmt.Sprintf("Phone %d", i)),
			H("ConnectedLineNum", "<unknown>"), H("ConnectedLineName", "<unknown>"),
			H("Language", "en"), H("AccountCode", ""),
			H("Context", "from-internal"), H("Exten", "200"), H("Priority", "1"),
			H("Uniqueid", fmt.Sprintf("1700000000.%d", i)), H("Linkedid", fmt.Sprintf("1700000000.%d", i-i%2)),
			H("Application", "Dial"), H("ApplicationData", "PJSIP/200,30"),
			H("Duration", "00:01:05"), H("BridgeId", ""))
	}
	r.msg(H("Event", "CoreShowChannelsComplete"), H("ActionID", id), H("EventList", "Complete"), H("ListItems", strconv.Itoa(n)))
}

// command runs a CLI command and writes the Command answer in the current
// format. It returns what to do after the answer was sent.
func (s *Server) command(id, cmd string, r *reply) (after func()) {
	cmd = strings.Join(strings.Fields(cmd), " ")
	out, ok, after := s.cli(cmd)
	s.mu.Lock()
	legacy := s.st.legacyCommand
	s.mu.Unlock()
	if legacy {
		r.WriteString("Response: Follows\r\nPrivilege: Command\r\n")
		if id != "" {
			fmt.Fprintf(r, "ActionID: %s\r\n", id)
		}
		for _, l := range out {
			r.WriteString(l + "\n")
		}
		r.WriteString("--END COMMAND--\r\n\r\n")
		return after
	}
	status := "Success"
	if !ok {
		status = "Error"
	}
	hs := []Header{H("Message", "Command output follows")}
	for _, l := range out {
		hs = append(hs, H("Output", l))
	}
	r.response(id, status, hs...)
	return after
}

// cli runs a CLI command: output lines, whether it succeeded, and what to do
// after the answer.
func (s *Server) cli(cmd string) ([]string, bool, func()) {
	s.mu.Lock()
	sc, scriptedOK := s.st.commands[cmd]
	st := s.st
	s.mu.Unlock()
	if scriptedOK {
		return append([]string(nil), sc.output...), !sc.fail, nil
	}
	switch {
	case cmd == "core show version":
		return []string{fmt.Sprintf("Asterisk %s built by pbxsync @ amisim on a x86_64 running Linux on 2024-01-01 00:00:00 UTC", s.cfg.AsteriskVersion)}, true, nil
	case cmd == "core show uptime":
		return []string{
			"System uptime: " + time.Since(st.startup).Round(time.Second).String(),
			"Last reload: " + time.Since(st.lastReload).Round(time.Second).String(),
		}, true, nil
	case cmd == "core show channels count":
		return []string{
			fmt.Sprintf("%d active channels", st.channels),
			fmt.Sprintf("%d active calls", st.channels),
			"0 calls processed",
		}, true, nil
	case cmd == "dialplan reload":
		// A real Asterisk says this even for a broken extensions.conf.
		s.checkFiles("pbx_config.so")
		return []string{"Dialplan reloaded."}, true, nil
	case strings.HasPrefix(cmd, "module reload "):
		mod := strings.TrimPrefix(cmd, "module reload ")
		if msg := s.reload(mod); msg != "" {
			return []string{fmt.Sprintf("Module '%s' reload failed: %s", mod, msg)}, true, nil
		}
		return []string{fmt.Sprintf("Module '%s' reloaded successfully.", mod)}, true, nil
	case cmd == "core restart now":
		return nil, true, s.restart
	case cmd == "core restart gracefully", cmd == "core restart when convenient":
		mode := strings.TrimPrefix(cmd, "core restart ")
		if s.deferRestart(mode) {
			return []string{"Waiting for inactivity to perform restart"}, true, nil
		}
		return nil, true, s.restart
	}
	return []string{fmt.Sprintf("No such command '%s' (type 'core show help %s' for other possible commands)", cmd, cmd)}, false, nil
}

// without returns hs without the headers named key.
func without(hs []Header, key string) []Header {
	out := make([]Header, 0, len(hs))
	for _, h := range hs {
		if !strings.EqualFold(h.Key, key) {
			out = append(out, h)
		}
	}
	return out
}
