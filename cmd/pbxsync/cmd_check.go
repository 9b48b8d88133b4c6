package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"

	"pbxsync/internal/config"
)

func cmdCheck(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := newFlags("check", "--config FILE | --example | --configured [--config FILE]",
		"Checks a configuration without starting anything. Exit 0 when it is valid;\nelse exit 1 and one line per problem on stderr: FILE:LINE:COL: message.\n\nWith --configured it only tells whether the host is set up: exit 1 and one\nline on stderr when the file is missing or has no [node] section yet (as the\nfile the Debian package installs), else exit 0, valid or not (run then\nreports the errors). pbxsync.service runs it as ExecCondition=, so that an\nunconfigured host leaves the service inactive instead of failing.", stderr)
	cfgPath := fs.String("config", defaultConfig, "configuration file")
	example := fs.Bool("example", false, "print a commented example configuration and exit")
	configured := fs.Bool("configured", false, "exit 1 when the file is missing or has no [node] section yet, else 0")
	if code, done := parse(fs, args); done {
		return code
	}
	if *configured {
		return checkConfigured(*cfgPath, stderr)
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

// checkConfigured is check --configured: 1 when path is missing or has no
// [node] table, with one line that says what to do; 0 otherwise.
func checkConfigured(path string, stderr io.Writer) int {
	src, err := os.ReadFile(path)
	switch {
	case errors.Is(err, os.ErrNotExist):
		fmt.Fprintf(stderr, "pbxsync: %s does not exist: the agent does not start until it does (pbxsync check --example prints a commented example)\n", path)
		return 1
	case err != nil:
		// Unreadable: let the agent start and report it.
		return 0
	case !config.HasNode(src):
		fmt.Fprintf(stderr, "pbxsync: %s has no [node] section yet: the agent does not start until you set [node] name and listen, [[peer]] and [[job]] there (the file explains how), then systemctl start pbxsync\n", path)
		return 1
	}
	return 0
}
