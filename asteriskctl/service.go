package asteriskctl

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os/exec"
	"regexp"
	"strings"
)

// Runner runs an external command and returns its combined output. It lets
// tests substitute systemctl.
type Runner interface {
	Run(ctx context.Context, name string, args ...string) ([]byte, error)
}

// ExecRunner runs commands with os/exec.
type ExecRunner struct{}

// Run implements Runner.
func (ExecRunner) Run(ctx context.Context, name string, args ...string) ([]byte, error) {
	return exec.CommandContext(ctx, name, args...).CombinedOutput()
}

// DefaultUnit is the systemd unit of Asterisk.
const DefaultUnit = "asterisk.service"

var unitName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9@._:\\-]*$`)

// ServiceControl starts, stops and restarts Asterisk through systemd, for
// when AMI itself is down. The zero value is not usable; use
// [NewServiceControl].
type ServiceControl struct {
	unit      string
	runner    Runner
	systemctl string
	log       *slog.Logger
}

// NewServiceControl returns a ServiceControl for unit (default
// asterisk.service) that runs "systemctl" through r (nil: ExecRunner).
func NewServiceControl(unit string, r Runner, log *slog.Logger) (*ServiceControl, error) {
	if unit == "" {
		unit = DefaultUnit
	}
	if !unitName.MatchString(unit) {
		return nil, fmt.Errorf("service control: invalid unit name %q", unit)
	}
	if r == nil {
		r = ExecRunner{}
	}
	if log == nil {
		log = slog.Default()
	}
	return &ServiceControl{unit: unit, runner: r, systemctl: "systemctl", log: log.With("component", "asteriskctl", "unit", unit)}, nil
}

// Unit returns the systemd unit name.
func (c *ServiceControl) Unit() string { return c.unit }

func (c *ServiceControl) run(ctx context.Context, verb string) error {
	out, err := c.runner.Run(ctx, c.systemctl, verb, "--", c.unit)
	if err != nil {
		text := strings.TrimSpace(string(out))
		if len(text) > 500 {
			text = text[:500] + "…"
		}
		if text != "" {
			return fmt.Errorf("systemctl %s %s: %w: %s", verb, c.unit, err, text)
		}
		return fmt.Errorf("systemctl %s %s: %w", verb, c.unit, err)
	}
	c.log.Info("systemctl done", "verb", verb)
	return nil
}

// Start runs "systemctl start UNIT".
func (c *ServiceControl) Start(ctx context.Context) error { return c.run(ctx, "start") }

// Stop runs "systemctl stop UNIT".
func (c *ServiceControl) Stop(ctx context.Context) error { return c.run(ctx, "stop") }

// Restart runs "systemctl restart UNIT". Prefer [Session.Restart] with
// RestartConvenient when AMI works: it waits for calls to end.
func (c *ServiceControl) Restart(ctx context.Context) error { return c.run(ctx, "restart") }

// IsActive runs "systemctl is-active UNIT": true when it exits 0, false
// when it exits non-zero with a state ("inactive", "failed", …), an error
// when systemctl could not be run.
func (c *ServiceControl) IsActive(ctx context.Context) (bool, error) {
	out, err := c.runner.Run(ctx, c.systemctl, "is-active", "--", c.unit)
	if err == nil {
		return true, nil
	}
	var ee *exec.ExitError
	var ec interface{ ExitCode() int }
	if errors.As(err, &ee) || errors.As(err, &ec) {
		return false, nil
	}
	return false, fmt.Errorf("systemctl is-active %s: %w: %s", c.unit, err, strings.TrimSpace(string(out)))
}
