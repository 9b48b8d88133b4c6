package asteriskctl

import (
	"context"
	"time"
)

// Controller is the edge between pbxsync's core and an Asterisk: what the
// syncer and the health monitor need. [*Session] implements it over AMI;
// tests substitute a double.
type Controller interface {
	// Reload reloads one module ("pbx_config.so", "res_pjsip.so"), or all
	// modules when module is "". Reloads run one at a time.
	Reload(ctx context.Context, module string) error
	// Command runs a CLI command and returns its output lines.
	Command(ctx context.Context, cmd string) ([]string, error)
	// CoreStatus returns Asterisk's start-up and last reload times and
	// current call count.
	CoreStatus(ctx context.Context) (CoreStatus, error)
	// CoreSettings returns version and core settings.
	CoreSettings(ctx context.Context) (CoreSettings, error)
	// Ping checks that AMI answers and returns the round-trip time.
	Ping(ctx context.Context) (time.Duration, error)
	// ModuleCheck reports whether a module is loaded.
	ModuleCheck(ctx context.Context, module string) (bool, error)
	// ActiveChannels returns the number of active channels.
	ActiveChannels(ctx context.Context) (int, error)
	// Restart restarts Asterisk through the CLI "core restart" command.
	Restart(ctx context.Context, when RestartWhen) error
	// Health summarizes the above for health probes.
	Health(ctx context.Context) (Health, error)
}

// RestartWhen selects the flavour of "core restart".
type RestartWhen string

// Restart flavours. RestartConvenient waits until there are no calls,
// RestartGracefully stops accepting new calls and waits for the current ones
// to end, RestartNow drops the calls.
const (
	RestartConvenient RestartWhen = "convenient"
	RestartGracefully RestartWhen = "gracefully"
	RestartNow        RestartWhen = "now"
)

// CoreStatus is the answer to the CoreStatus action. Times are in the
// local time zone, as Asterisk reports them.
type CoreStatus struct {
	Startup      time.Time // CoreStartupDate + CoreStartupTime
	LastReload   time.Time // CoreReloadDate + CoreReloadTime
	CurrentCalls int       // CoreCurrentCalls
}

// CoreSettings is the answer to the CoreSettings action.
type CoreSettings struct {
	AMIVersion      string // AMIversion, e.g. "7.0.3"
	AsteriskVersion string // AsteriskVersion, e.g. "20.5.0"
	SystemName      string
	MaxCalls        int
	RunUser         string
	RunGroup        string
	RealTimeEnabled bool
	CDREnabled      bool
	HTTPEnabled     bool
}

// Health is a snapshot of an Asterisk's state for health probes.
type Health struct {
	Reachable      bool          // AMI answered Ping
	FullyBooted    bool          // the session saw the FullyBooted event (needs "system" read permission)
	Version        string        // AsteriskVersion
	Uptime         time.Duration // since CoreStartup
	LastReload     time.Time     // CoreReload
	ActiveChannels int           // CoreShowChannels count
	RTT            time.Duration // Ping round trip
	CheckedAt      time.Time
	Error          string // first error met, "" when healthy
}
