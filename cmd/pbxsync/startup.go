package main

import (
	"crypto/tls"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/jackc/pgx/v5"

	"pbxsync/asteriskctl"
	"pbxsync/hostmon"
	"pbxsync/internal/config"
	"pbxsync/internal/identity"
	"pbxsync/rules"
)

// loadConfig loads the configuration at path and runs startupCheck on it:
// what `pbxsync check` accepts, `pbxsync run` (and a SIGHUP reload) starts
// with, and what one refuses the other refuses with the same
// FILE:LINE:COL lines.
func loadConfig(path string) (*config.Config, error) {
	cfg, err := config.Load(path)
	if err != nil {
		return nil, err
	}
	if err := startupCheck(cfg); err != nil {
		return nil, err
	}
	return cfg, nil
}

// startupCheck finds every reason the agent would refuse cfg at start that
// the file alone does not show, without starting or creating anything:
// rules that do not compile, a mode this agent does not run, a secret file
// or dsn_file that is missing or unusable, a DSN that does not parse, an
// unusable data_dir or identity, a peer pinned with this node's own ID.
// Each problem is one *config.Error at the key it is about. What only
// starting shows (an address in use, a database that does not answer) is
// left to run.
func startupCheck(cfg *config.Config) error {
	var errs config.ErrorList
	add := func(e *config.Error) { errs = append(errs, e) }

	for i, j := range cfg.Jobs {
		if j.Mode == config.ModeMesh && (j.Order == config.OrderRolling || j.Order == config.OrderRollingSites) {
			add(cfg.ErrorAt(config.JobKey(i, "order"), nil, "job %q: job.order: %q is not built for mesh jobs yet (every change goes to every member at once); use %q", j.Name, j.Order, config.OrderParallel))
		}
		if j.Mode == config.ModeMesh && len(j.Templates) > 0 {
			add(cfg.ErrorAt(config.JobKey(i, "templates"), nil, "job %q: job.templates: templates are not built for mesh jobs yet (a member would sync the rendering); use a push job for templated files", j.Name))
		}
		if j.Mode == config.ModeMesh && len(j.Windows) > 0 {
			add(cfg.ErrorAt(config.JobKey(i, "window"), nil, "job %q: job.window: sync windows are not built for mesh jobs yet (every member sends at once)", j.Name))
		}
		if _, err := rules.Compile(j.Rules, true); err != nil {
			for _, e := range unjoin(err) {
				key := config.JobKey(i, "")
				var re *rules.RuleError
				if errors.As(e, &re) && re.Index >= 0 && re.Index < len(j.Rules) {
					key = config.RuleKey(i, re.Index, "")
				}
				add(cfg.ErrorAt(key, e, "job %q: %v", j.Name, e))
			}
		}
		switch j.Type {
		case config.TypeFiles:
			if _, err := hostmon.NewFilter(j.Include, j.Exclude); err != nil {
				add(cfg.ErrorAt(config.JobKey(i, "include"), err, "job %q: %v", j.Name, err))
			}
		case config.TypePostgres:
			key := config.JobKey(i, "dsn")
			if j.DSN == "" {
				key = config.JobKey(i, "dsn_file")
			}
			dsn, err := j.ReadDSN()
			if err != nil {
				add(cfg.ErrorAt(key, err, "job %q: %v", j.Name, err))
			} else if _, err := pgx.ParseConfig(dsn); err != nil {
				// pgx's message may quote the DSN, which may hold a password.
				add(cfg.ErrorAt(key, nil, "job %q: the DSN does not parse (not shown: it may hold a password)", j.Name))
			}
		}
	}

	if a := cfg.Asterisk; a.AMI != "" {
		if err := asteriskctl.CheckSecretFile(a.SecretFile); err != nil {
			add(cfg.ErrorAt("asterisk.secret_file", err, "asterisk.secret_file: %v", err))
		}
	}
	if _, err := asteriskctl.NewServiceControl(cfg.Asterisk.Service, nil, nil); err != nil {
		add(cfg.ErrorAt("asterisk.service", err, "asterisk.service: %v", err))
	}

	if n := cfg.Node; n.HTTPCert != "" && n.HTTPKey != "" {
		if _, err := tls.LoadX509KeyPair(n.HTTPCert, n.HTTPKey); err != nil {
			add(cfg.ErrorAt("node.http_cert", err, "node.http_cert: %s with http_key %s: %v", n.HTTPCert, n.HTTPKey, err))
		}
	}

	if err := usableDir(cfg.Node.DataDir); err != nil {
		add(cfg.ErrorAt("node.data_dir", err, "node.data_dir: %v", err))
	} else if id, err := existingIdentity(cfg.Node.DataDir); err != nil {
		add(cfg.ErrorAt("node.data_dir", err, "node.data_dir: %v", err))
	} else if id != nil {
		for i, p := range cfg.Peers {
			if p.ID == id.ID {
				add(cfg.ErrorAt(config.PeerKey(i, "id"), nil, "peer %q: peer.id: %s is this node's own ID (from %s)", p.Name, p.ID, cfg.Node.DataDir))
			}
		}
	}

	if len(errs) == 0 {
		return nil
	}
	for _, e := range errs {
		if errors.Is(e.Err, fs.ErrPermission) {
			e.Msg += " (check reads these files as run does: run it as the agent's user, or as root)"
		}
	}
	config.SortErrors(errs)
	return errs
}

// usableDir reports whether dir is a directory or can become one: it or
// its nearest existing parent is a directory.
func usableDir(dir string) error {
	for p := dir; ; p = filepath.Dir(p) {
		fi, err := os.Stat(p)
		switch {
		case err == nil && fi.IsDir():
			return nil
		case err == nil && p == dir:
			return fmt.Errorf("%s is not a directory", dir)
		case err == nil:
			return fmt.Errorf("%s cannot be created: %s is not a directory", dir, p)
		case !errors.Is(err, fs.ErrNotExist):
			return err
		case p == filepath.Dir(p):
			return err
		}
	}
}

// existingIdentity loads the node identity in dir when there is one (nil
// when there is none yet: run creates it).
func existingIdentity(dir string) (*identity.Identity, error) {
	for _, f := range []string{identity.KeyFile, identity.CertFile} {
		if _, err := os.Stat(filepath.Join(dir, f)); err == nil {
			return identity.Load(dir)
		}
	}
	return nil, nil
}

// unjoin returns the errors of a joined error, or err alone.
func unjoin(err error) []error {
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		return j.Unwrap()
	}
	return []error{err}
}
