package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"pbxsync/internal/config"
	"pbxsync/internal/identity"
)

func cmdID(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := newFlags("id", "[--data-dir DIR | --config FILE]",
		"Creates this node's Ed25519 identity in the data directory if it is missing (key\nfile mode 0600) and prints the node ID on one line. Give the ID to every peer\nthat should accept this node: they pin it in their [[peer]] id.", stderr)
	dataDir := fs.String("data-dir", "", "data directory (default: [node] data_dir of --config, else /var/lib/pbxsync)")
	cfgPath := fs.String("config", "", "read data_dir from this configuration")
	if code, done := parse(fs, args); done {
		return code
	}
	dir := *dataDir
	if dir == "" && *cfgPath != "" {
		cfg, err := config.Load(*cfgPath)
		if err != nil {
			fmt.Fprintln(stderr, err)
			return 1
		}
		dir = cfg.Node.DataDir
	}
	byDefault := dir == ""
	if byDefault {
		dir = config.DefaultDataDir
	}
	if !filepath.IsAbs(dir) {
		fmt.Fprintf(stderr, "pbxsync id: --data-dir %q is a relative path; give an absolute one (data_dir in the configuration is absolute too)\n", dir)
		return 2
	}
	_, statErr := os.Stat(filepath.Join(dir, identity.KeyFile))
	id, err := identity.LoadOrCreate(dir)
	if err != nil {
		fmt.Fprintln(stderr, "pbxsync id:", err)
		return 1
	}
	if errors.Is(statErr, os.ErrNotExist) {
		note := ""
		if byDefault {
			note = " (the default; --data-dir DIR or --config FILE for another)"
		}
		fmt.Fprintf(stderr, "pbxsync id: created a new identity in %s%s\n", dir, note)
	}
	fmt.Fprintln(stdout, id.ID)
	return 0
}
