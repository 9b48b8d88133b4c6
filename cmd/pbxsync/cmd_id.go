package main

import (
	"context"
	"fmt"
	"io"

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
	if dir == "" {
		dir = "/var/lib/pbxsync"
	}
	id, err := identity.LoadOrCreate(dir)
	if err != nil {
		fmt.Fprintln(stderr, "pbxsync id:", err)
		return 1
	}
	fmt.Fprintln(stdout, id.ID)
	return 0
}
