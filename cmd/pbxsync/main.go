// Command pbxsync is the pbxsync agent and its control tool: one binary
// that runs the agent (run), checks configurations (check), prints the node
// ID (id), and talks to a running agent (status, history, rollback). See
// `pbxsync help`.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

const usage = `pbxsync keeps a farm of Asterisk servers in step: it watches the files and
tables named in sync jobs, sends compressed deltas to its peers over mutual-TLS
QUIC, applies what it receives atomically, checks Asterisk, and rolls back.

Usage:
  pbxsync <command> [flags]

Commands:
  run       run the agent in the foreground (SIGTERM stops, SIGHUP reloads)
  check     check a configuration file; exit 1 with FILE:LINE:COL: message
  id        create this node's identity if missing and print its node ID
  status    show peers and jobs of the running agent (--json for tools)
  history   list a job's generations (--json for tools)
  conflicts  list a mesh job's conflicts (--json; --get ID: the losing content)
  rollback  roll a job back to an earlier generation (on a source: the farm;
            on a push target only with --hold)
  resume    end the hold of a push target (after rollback --hold)
  sync      sync a job now: rescan its tree and announce (--job JOB)
  render    print what a template renders to on this node or a peer
  backup    write a generation of a job to a verified .tar.zst archive
  restore   verify an archive and apply it as a new generation (on a source:
            the farm)
  token     print the dashboard's API token (created on first use)
  diff      show what changed between two generations of a job
  demo      start three agents on 127.0.0.1 to watch (--script: run a scenario)
  version   print the version (also --version, -v)

Run 'pbxsync <command> --help' for a command's flags.
Configuration reference: 'pbxsync check --example' prints a commented example.
`

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// command is one subcommand: it parses its own flags.
type command func(ctx context.Context, args []string, stdout, stderr io.Writer) int

func run(args []string, stdout, stderr io.Writer) int {
	commands := map[string]command{
		"run":       cmdRun,
		"check":     cmdCheck,
		"id":        cmdID,
		"status":    cmdStatus,
		"history":   cmdHistory,
		"conflicts": cmdConflicts,
		"rollback":  cmdRollback,
		"resume":    cmdResume,
		"sync":      cmdSync,
		"render":    cmdRender,
		"backup":    cmdBackup,
		"restore":   cmdRestore,
		"token":     cmdToken,
		"diff":      cmdDiff,
		"demo":      cmdDemo,
		"gendoc":    cmdGendoc,
		"version": func(context.Context, []string, io.Writer, io.Writer) int {
			fmt.Fprintln(stdout, "pbxsync", version)
			return 0
		},
	}
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	switch args[0] {
	case "--version", "-version", "-v", "-V":
		args = []string{"version"}
	case "help", "-h", "-help", "--help":
		if len(args) > 1 {
			if c, ok := commands[args[1]]; ok {
				return c(context.Background(), []string{"--help"}, stdout, stderr)
			}
		}
		fmt.Fprint(stdout, usage)
		return 0
	}
	c, ok := commands[args[0]]
	if !ok {
		fmt.Fprintf(stderr, "pbxsync: unknown command %q\n\n%s", args[0], usage)
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	return c(ctx, args[1:], stdout, stderr)
}

// newFlags returns a flag set whose --help prints a synopsis, a description
// and the flags.
func newFlags(name, synopsis, description string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	if sink, ok := stderr.(*helpSink); ok {
		sink.synopsis, sink.description, sink.fs = synopsis, description, fs
	}
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage: pbxsync %s %s\n\n%s\n\nFlags:\n", name, synopsis, description)
		fs.PrintDefaults()
	}
	return fs
}

// parse parses args; it returns (exit code, done) where done means the
// command must return that code now (--help or a flag error).
func parse(fs *flag.FlagSet, args []string) (int, bool) {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0, true
		}
		return 2, true
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(fs.Output(), "pbxsync %s: unexpected argument %q\n", fs.Name(), fs.Arg(0))
		fs.Usage()
		return 2, true
	}
	return 0, false
}

const defaultConfig = "/etc/pbxsync/pbxsync.toml"

// self is how the user ran this binary, for commands it suggests: the
// path when they gave one ("./bin/pbxsync"), else "pbxsync" (on PATH).
var self = commandName(os.Args[0])

func commandName(arg0 string) string {
	if strings.Contains(arg0, "/") {
		return arg0
	}
	return "pbxsync"
}
