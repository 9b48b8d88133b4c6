package main

import (
	"context"
	"fmt"
	"io"

	"pbxsync/internal/config"
)

func cmdCheck(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := newFlags("check", "--config FILE | --example",
		"Checks a configuration without starting anything. Exit 0 when it is valid;\nelse exit 1 and one line per problem on stderr: FILE:LINE:COL: message.", stderr)
	cfgPath := fs.String("config", defaultConfig, "configuration file")
	example := fs.Bool("example", false, "print a commented example configuration and exit")
	if code, done := parse(fs, args); done {
		return code
	}
	if *example {
		fmt.Fprint(stdout, config.Example())
		return 0
	}
	cfg, err := loadConfig(*cfgPath)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	fmt.Fprintf(stdout, "%s: ok (node %s, %d peers, %d jobs)\n", cfg.File, cfg.Node.Name, len(cfg.Peers), len(cfg.Jobs))
	return 0
}
