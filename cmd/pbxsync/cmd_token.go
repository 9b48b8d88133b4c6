package main

import (
	"context"
	"fmt"
	"io"
	"path/filepath"

	"pbxsync/internal/config"
	"pbxsync/internal/httpapi"
)

func cmdToken(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := newFlags("token", "[--config FILE | --data-dir DIR] [--rotate]",
		"Prints the token that the dashboard's actions (rollback, resume, sync now) and\nthe /api/v1 POST endpoints need, creating it on first use: data_dir/http-token,\nmode 0600. Paste it into the dashboard, or send it as 'Authorization: Bearer\nTOKEN'. --rotate replaces it; the old token stops working at once.", stderr)
	cfgPath := fs.String("config", defaultConfig, "read data_dir from this configuration")
	dataDir := fs.String("data-dir", "", "data directory (instead of --config)")
	rotate := fs.Bool("rotate", false, "replace the token by a new one")
	if code, done := parse(fs, args); done {
		return code
	}
	dir := *dataDir
	if dir == "" {
		cfg, err := config.Load(*cfgPath)
		if err != nil {
			fmt.Fprintln(stderr, err)
			return 1
		}
		dir = cfg.Node.DataDir
	}
	if !filepath.IsAbs(dir) {
		fmt.Fprintf(stderr, "pbxsync token: --data-dir %q is a relative path; give an absolute one\n", dir)
		return 2
	}
	var tok string
	var err error
	if *rotate {
		tok, err = httpapi.RotateToken(dir)
	} else {
		var created bool
		tok, created, err = httpapi.LoadOrCreateToken(dir)
		if created {
			fmt.Fprintf(stderr, "pbxsync token: created a new token in %s\n", httpapi.TokenPath(dir))
		}
	}
	if err != nil {
		fmt.Fprintln(stderr, "pbxsync token:", err)
		return 1
	}
	fmt.Fprintln(stdout, tok)
	return 0
}
