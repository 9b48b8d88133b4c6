package asteriskctl

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// commandOutput returns the output of a Command answer in either format:
// the "Output:" fields (Asterisk 14 and later) followed by raw body lines
// (legacy "Response: Follows").
func commandOutput(m *Message) []string {
	if m == nil {
		return nil
	}
	out := m.All("Output")
	return append(out, m.Output...)
}

// validModule rejects module names that could not be a module.
func validModule(module string) error {
	if module == "" {
		return errors.New("module name is empty")
	}
	if len(module) > 256 || strings.ContainsAny(module, " \t\r\n/") {
		return fmt.Errorf("invalid module name %q", module)
	}
	return nil
}

// Reload reloads module (e.g. "pbx_config.so") with the Reload action, or
// every module when module is "". Reloads on one Session are serialized.
// "A reload is in progress" answers are retried with exponential backoff
// and jitter up to Config.ReloadRetries times; a broken extensions.conf
// yields an [*ActionError] with Message "An unknown error occurred", an
// unknown module one that matches [ErrNoSuchModule].
//
// Note that many modules answer Success even when their configuration has
// a parse error and keep the old one; combine Reload with a [LogChecker].
func (s *Session) Reload(ctx context.Context, module string) error {
	what := "all modules"
	var fields []Field
	if module != "" {
		if err := validModule(module); err != nil {
			return fmt.Errorf("reload: %w", err)
		}
		what = module
		fields = []Field{{Key: "Module", Value: module}}
	}
	select {
	case s.reloadSem <- struct{}{}:
	case <-ctx.Done():
		return fmt.Errorf("reload %s: %w", what, waitError("Reload", ctx, errors.New("another reload is running")))
	}
	defer func() { <-s.reloadSem }()
	for attempt := 1; ; attempt++ {
		_, err := s.Do(ctx, "Reload", fields...)
		if err == nil {
			if attempt > 1 {
				s.log.Info("reload done after retries", "module", what, "attempts", attempt)
			}
			return nil
		}
		if !errors.Is(err, ErrReloadInProgress) {
			return fmt.Errorf("reload %s: %w", what, err)
		}
		if attempt > s.cfg.ReloadRetries {
			return fmt.Errorf("reload %s: gave up after %d attempts: %w", what, attempt, err)
		}
		d := backoff(attempt, s.cfg.ReloadBackoff, max(5*time.Second, s.cfg.ReloadBackoff))
		s.log.Info("Asterisk is busy with another reload; retrying", "module", what, "attempt", attempt, "retry_in", d)
		t := time.NewTimer(d)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("reload %s: %w", what, waitError("Reload", ctx, err))
		}
	}
}

// Command runs a CLI command through the Command action and returns its
// output lines, in either output format. When Asterisk answers Error (for
// example "No such command"), the output is returned with an
// [*ActionError].
//
// Do not trust the text of reload commands: "dialplan reload" answers
// "Dialplan reloaded." even for a broken extensions.conf. Use [Session.Reload].
func (s *Session) Command(ctx context.Context, cmd string) ([]string, error) {
	if strings.TrimSpace(cmd) == "" {
		return nil, errors.New("command: empty command")
	}
	resp, err := s.Do(ctx, "Command", Field{Key: "Command", Value: cmd})
	out := commandOutput(resp)
	if err != nil {
		return out, fmt.Errorf("command %q: %w", cmd, err)
	}
	return out, nil
}

// parseAsteriskTime parses the Date/Time pair Asterisk reports.
func parseAsteriskTime(date, clock string) time.Time {
	if date == "" {
		return time.Time{}
	}
	if clock == "" {
		clock = "00:00:00"
	}
	t, err := time.ParseInLocation("2006-01-02 15:04:05", date+" "+clock, time.Local)
	if err != nil {
		return time.Time{}
	}
	return t
}

// CoreStatus runs the CoreStatus action.
func (s *Session) CoreStatus(ctx context.Context) (CoreStatus, error) {
	resp, err := s.Do(ctx, "CoreStatus")
	if err != nil {
		return CoreStatus{}, fmt.Errorf("core status: %w", err)
	}
	st := CoreStatus{
		Startup:    parseAsteriskTime(resp.Get("CoreStartupDate"), resp.Get("CoreStartupTime")),
		LastReload: parseAsteriskTime(resp.Get("CoreReloadDate"), resp.Get("CoreReloadTime")),
	}
	if v := resp.Get("CoreCurrentCalls"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil {
			return st, fmt.Errorf("core status: CoreCurrentCalls %q: %w", v, err)
		}
		st.CurrentCalls = n
	}
	return st, nil
}

func yes(v string) bool {
	return strings.EqualFold(v, "yes") || strings.EqualFold(v, "true") || v == "1"
}

// CoreSettings runs the CoreSettings action.
func (s *Session) CoreSettings(ctx context.Context) (CoreSettings, error) {
	resp, err := s.Do(ctx, "CoreSettings")
	if err != nil {
		return CoreSettings{}, fmt.Errorf("core settings: %w", err)
	}
	maxCalls, _ := strconv.Atoi(resp.Get("CoreMaxCalls"))
	return CoreSettings{
		AMIVersion:      resp.Get("AMIversion"),
		AsteriskVersion: resp.Get("AsteriskVersion"),
		SystemName:      resp.Get("SystemName"),
		MaxCalls:        maxCalls,
		RunUser:         resp.Get("CoreRunUser"),
		RunGroup:        resp.Get("CoreRunGroup"),
		RealTimeEnabled: yes(resp.Get("CoreRealTimeEnabled")),
		CDREnabled:      yes(resp.Get("CoreCDRenabled")),
		HTTPEnabled:     yes(resp.Get("CoreHTTPenabled")),
	}, nil
}

// Ping runs the Ping action and returns the round-trip time.
func (s *Session) Ping(ctx context.Context) (time.Duration, error) {
	start := time.Now()
	if _, err := s.Do(ctx, "Ping"); err != nil {
		return 0, fmt.Errorf("ping: %w", err)
	}
	return time.Since(start), nil
}

// ModuleCheck runs the ModuleCheck action. A "Module not loaded" answer is
// (false, nil).
func (s *Session) ModuleCheck(ctx context.Context, module string) (bool, error) {
	if err := validModule(module); err != nil {
		return false, fmt.Errorf("module check: %w", err)
	}
	_, err := s.Do(ctx, "ModuleCheck", Field{Key: "Module", Value: module})
	var ae *ActionError
	if errors.As(err, &ae) && strings.EqualFold(strings.TrimSpace(ae.Message), MsgModuleNotLoaded) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("module check %s: %w", module, err)
	}
	return true, nil
}

// ActiveChannels counts the CoreShowChannel events of the CoreShowChannels
// list action. It fails when the closing event's ListItems disagrees with
// the number of events received.
func (s *Session) ActiveChannels(ctx context.Context) (int, error) {
	_, events, err := s.DoList(ctx, "CoreShowChannels")
	if err != nil {
		return 0, fmt.Errorf("active channels: %w", err)
	}
	n := 0
	var last *Message
	for _, e := range events {
		if strings.EqualFold(e.Event(), "CoreShowChannel") {
			n++
		}
		last = e
	}
	if last != nil {
		if v := last.Get("ListItems"); v != "" {
			items, err := strconv.Atoi(v)
			if err != nil {
				return n, fmt.Errorf("active channels: ListItems %q: %w", v, err)
			}
			if items != n {
				return n, fmt.Errorf("active channels: Asterisk listed %d channels but %d arrived", items, n)
			}
		}
	}
	return n, nil
}

// Restart asks Asterisk to restart with "core restart when convenient"
// (when "" or RestartConvenient), "core restart gracefully" or
// "core restart now". A connection lost during the action counts as
// success: Asterisk closes manager sessions when it goes down, sometimes
// before it answers. The Session reconnects when Asterisk is back.
func (s *Session) Restart(ctx context.Context, when RestartWhen) error {
	var cmd string
	switch when {
	case "", RestartConvenient:
		cmd = "core restart when convenient"
	case RestartGracefully:
		cmd = "core restart gracefully"
	case RestartNow:
		cmd = "core restart now"
	default:
		return fmt.Errorf("restart: unknown mode %q (want convenient, gracefully or now)", when)
	}
	_, err := s.Command(ctx, cmd)
	if errors.Is(err, ErrConnectionLost) {
		s.log.Info("AMI connection closed by the restart", "command", cmd)
		return nil
	}
	if err != nil {
		return fmt.Errorf("restart: %w", err)
	}
	return nil
}

// Health pings Asterisk and collects version, uptime, last reload, channel
// count and whether it is fully booted. On error the returned Health holds
// what was learnt before it and Error holds its text.
func (s *Session) Health(ctx context.Context) (Health, error) {
	h := Health{CheckedAt: time.Now()}
	fail := func(err error) (Health, error) {
		h.Error = err.Error()
		return h, fmt.Errorf("health: %w", err)
	}
	rtt, err := s.Ping(ctx)
	if err != nil {
		return fail(err)
	}
	h.Reachable, h.RTT = true, rtt
	h.FullyBooted = s.fullyBooted()
	st, err := s.CoreStatus(ctx)
	if err != nil {
		return fail(err)
	}
	if !st.Startup.IsZero() {
		h.Uptime = max(0, time.Since(st.Startup))
	}
	h.LastReload = st.LastReload
	set, err := s.CoreSettings(ctx)
	if err != nil {
		return fail(err)
	}
	h.Version = set.AsteriskVersion
	n, err := s.ActiveChannels(ctx)
	if err != nil {
		return fail(err)
	}
	h.ActiveChannels = n
	return h, nil
}
