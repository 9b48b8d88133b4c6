package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/coreos/go-systemd/v22/daemon"

	"pbxsync/asteriskctl"
	"pbxsync/internal/config"
	"pbxsync/internal/control"
	"pbxsync/internal/httpapi"
	"pbxsync/internal/identity"
	"pbxsync/internal/procmaps"
	"pbxsync/internal/wire"
	"pbxsync/syncer"
)

// exitConfig is run's exit status for a configuration it cannot use
// (EX_CONFIG of sysexits.h). pbxsync.service names it in
// RestartPreventExitStatus=: restarting cannot fix a broken file, so the
// unit fails once, with FILE:LINE:COL in the journal, instead of looping.
const exitConfig = 78

func cmdRun(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := newFlags("run", "[--config FILE]",
		"Runs the agent in the foreground until SIGTERM or SIGINT (it finishes the apply\nin progress first). SIGHUP reloads the configuration: an invalid new file is\nrefused with FILE:LINE:COL and the running configuration stays. An invalid file\nat start: exit 78 with FILE:LINE:COL lines (pbxsync.service does not restart\nthen). Under systemd it sends READY=1 and WATCHDOG=1 (Type=notify, WatchdogSec=).\nThe Go heap's soft limit is [node] memory_limit (default 48MiB, raised to 4/3 of\nthe live heap while that needs more; GOMEMLIMIT wins).", stderr)
	cfgPath := fs.String("config", defaultConfig, "configuration file")
	jsonLog := fs.Bool("log-json", false, "log JSON objects instead of key=value text")
	if code, done := parse(fs, args); done {
		return code
	}
	cfg, err := loadConfig(*cfgPath)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return exitConfig
	}
	log := newLogger(stderr, cfg.Node.LogLevel, *jsonLog)
	mem := newMemoryLimit(log)
	mem.configure(cfg.Node)
	memCtx, stopMem := context.WithCancel(ctx)
	defer stopMem()
	go mem.run(memCtx)
	stopProfile, err := startProfile()
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	defer stopProfile()
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	if err := runAgent(ctx, cfg, log, hup, mem); err != nil {
		log.Error("agent failed", "err", err)
		return 1
	}
	return 0
}

func newLogger(w io.Writer, level string, asJSON bool) *slog.Logger {
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(level)); err != nil {
		lv = slog.LevelInfo
	}
	opts := &slog.HandlerOptions{Level: lv}
	if asJSON {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

// agentControl adapts the agent to the control socket and the HTTP API.
type agentControl struct{ a *syncer.Agent }

func (c agentControl) Status() any { return c.a.Status() }

func (c agentControl) Rollback(ctx context.Context, job string, to uint64, hold bool) (uint64, error) {
	return c.a.Rollback(ctx, job, to, hold)
}

func (c agentControl) Resume(ctx context.Context, job string) error { return c.a.Resume(ctx, job) }

func (c agentControl) SyncNow(ctx context.Context, job string) error { return c.a.SyncNow(ctx, job) }

func (c agentControl) Restore(ctx context.Context, job, name string, archive io.Reader) (uint64, error) {
	return c.a.Restore(ctx, job, name, archive)
}

type agentHealth struct{ a *syncer.Agent }

func (h agentHealth) Status() syncer.Status { return h.a.Status() }

func (h agentHealth) Healthy(ctx context.Context) error { return h.a.Healthy(ctx) }

func (h agentHealth) LocalState() *wire.State { return h.a.LocalState() }

// runAgent runs one agent with cfg until ctx is done. A signal on reload
// (may be nil) re-reads cfg.File, and mem (nil when several agents share
// the process: the demo) takes its [node] memory_limit.
func runAgent(ctx context.Context, cfg *config.Config, log *slog.Logger, reload <-chan os.Signal, mem *memoryLimit) error {
	id, err := identity.LoadOrCreate(cfg.Node.DataDir)
	if err != nil {
		return err
	}
	for _, p := range cfg.Peers {
		if p.ID == id.ID {
			return fmt.Errorf("%s: peer %q has this node's own ID %s", cfg.File, p.Name, id.ID)
		}
	}
	opts := syncer.Options{Config: cfg, Identity: id, Log: log, Version: version}
	if mem != nil {
		opts.Memory = mem
	}
	// no [asterisk]: shell and service actions and check commands only
	actions := &syncer.AsteriskActions{Log: log, ListDir: cfg.Node.DataDir}
	svc, err := asteriskctl.NewServiceControl(cfg.Asterisk.Service, asteriskctl.ExecRunner{}, log)
	if err != nil {
		return fmt.Errorf("%s: asterisk.service: %w", cfg.File, err)
	}
	actions.Service = svc
	if cfg.Asterisk.AMI != "" {
		sess, err := asteriskctl.New(asteriskctl.Config{Addr: cfg.Asterisk.AMI, Username: cfg.Asterisk.Username, SecretFile: cfg.Asterisk.SecretFile, Logger: log})
		if err != nil {
			return err
		}
		defer func() {
			cctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			defer cancel()
			sess.Close(cctx)
		}()
		actions.AMI, actions.LogPath, actions.FindLog = sess, cfg.Asterisk.Log, cfg.Asterisk.Log == ""
		opts.Health = asteriskHealth(sess, cfg.Asterisk.AMI)
		opts.Asterisk = func(ctx context.Context) (syncer.AsteriskInfo, error) {
			h, err := sess.Health(ctx)
			return syncer.AsteriskInfo{Version: h.Version, Uptime: h.Uptime, LastReload: h.LastReload, Channels: h.ActiveChannels, FullyBooted: h.FullyBooted}, err
		}
	}
	opts.AfterApply = actions
	agent, err := syncer.New(opts)
	if err != nil {
		return err
	}
	ctrl, err := control.Listen(control.SocketPath(cfg.Node.DataDir), agentControl{agent}, log)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go ctrl.Serve(ctx)
	if err := startPprof(ctx, log); err != nil {
		return err
	}
	if cfg.Node.HTTP != "" {
		// the token of the API's actions: created on first use, read by
		// the listener on every action (never logged)
		if _, _, err := httpapi.LoadOrCreateToken(cfg.Node.DataDir); err != nil {
			// the page and the read endpoints work without it; the
			// actions answer 401 and log why on each try
			log.Warn("no usable API token: the dashboard's actions are refused until it is fixed", "err", err)
		}
		hs, err := httpapi.Listen(httpapi.Options{Addr: cfg.Node.HTTP, CertFile: cfg.Node.HTTPCert, KeyFile: cfg.Node.HTTPKey,
			Source: agentHealth{agent}, History: agent.Store(), Actions: agentControl{agent},
			TokenFile: httpapi.TokenPath(cfg.Node.DataDir), Log: log})
		if err != nil {
			return err
		}
		log.Info("dashboard and API listening", "url", hs.URL()+"/", "actions", "need the token that 'pbxsync token' prints")
		go func() {
			if err := hs.Serve(ctx); err != nil {
				log.Error("http listener stopped", "err", err)
			}
		}()
	}
	done := make(chan error, 1)
	go func() { done <- agent.Run(ctx) }()
	log.Info("agent started", "node", cfg.Node.Name, "id", id.ID.String(), "listen", cfg.Node.Listen, "jobs", len(cfg.Jobs), "peers", len(cfg.Peers))
	daemon.SdNotify(false, daemon.SdNotifyReady)
	// what only the start ran (package initialisers all over the binary)
	// need not stay resident: see procmaps.ReleaseExecutable
	if n, err := procmaps.ReleaseExecutable(); err != nil {
		log.Debug("cannot let go of the executable's pages", "err", err)
	} else {
		log.Debug("let go of the executable's resident pages", "mapped_bytes", n)
	}
	var watchdog <-chan time.Time
	if iv, err := daemon.SdWatchdogEnabled(false); err == nil && iv > 0 {
		t := time.NewTicker(iv / 2)
		defer t.Stop()
		watchdog = t.C
	}
	for {
		select {
		case err := <-done:
			return err
		case <-ctx.Done():
			daemon.SdNotify(false, daemon.SdNotifyStopping)
			log.Info("stopping")
			return <-done
		case <-watchdog:
			daemon.SdNotify(false, daemon.SdNotifyWatchdog)
		case <-reload:
			daemon.SdNotify(false, daemon.SdNotifyReloading)
			next, err := loadConfig(cfg.File)
			if err != nil {
				log.Error("configuration reload refused; the running configuration stays", "err", err.Error())
			} else if err := agent.Reload(next); err != nil {
				log.Error("configuration reload refused; the running configuration stays", "file", cfg.File, "err", err)
			} else {
				if next.Asterisk != cfg.Asterisk {
					log.Warn("[asterisk] changed; restart the agent to use the new settings", "file", cfg.File)
				}
				if n, o := next.Node, cfg.Node; n.HTTP != o.HTTP || n.HTTPCert != o.HTTPCert || n.HTTPKey != o.HTTPKey {
					log.Warn("[node] http, http_cert or http_key changed; restart the agent to use the new settings", "file", cfg.File)
				}
				if mem != nil {
					mem.configure(next.Node)
				}
				cfg = next
			}
			daemon.SdNotify(false, daemon.SdNotifyReady)
		}
	}
}

// asteriskHealth reports whether the local Asterisk answers AMI: at once
// when the session is down (with the reason it is), else by a Ping.
func asteriskHealth(sess *asteriskctl.Session, addr string) func(context.Context) error {
	return func(ctx context.Context) error {
		if !sess.Connected() {
			err := sess.LastError()
			if err == nil {
				err = asteriskctl.ErrNotConnected
			}
			return fmt.Errorf("asterisk at %s unreachable: %w", addr, err)
		}
		ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		defer cancel()
		if _, err := sess.Ping(ctx); err != nil {
			return fmt.Errorf("asterisk at %s: %w", addr, err)
		}
		return nil
	}
}
