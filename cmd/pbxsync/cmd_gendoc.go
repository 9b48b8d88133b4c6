package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"regexp"
	"strings"

	"pbxsync/internal/clidoc"
	"pbxsync/internal/config"
	"pbxsync/internal/identity"
)

// cmdGendoc writes files generated from this binary's own help, for the
// Debian package (internal/debpkg/build.sh): the manual page pbxsync(8),
// the bash completion and the packaged /etc/pbxsync/pbxsync.toml. It is
// not in the command list: it is a build step, not an admin's command.
func cmdGendoc(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := newFlags("gendoc", "[--version V] [--date YYYY-MM-DD] man | bash | conffile",
		"Writes to stdout a file generated from this binary's help: the manual page\npbxsync(8) in troff (man), the bash completion script (bash), or the commented\nconfiguration the Debian package installs (conffile).", stderr)
	ver := fs.String("version", version, "version shown in the manual page")
	date := fs.String("date", "", "date shown in the manual page")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if fs.NArg() != 1 {
		fs.Usage()
		return 2
	}
	var err error
	switch fs.Arg(0) {
	case "man", "bash":
		var p clidoc.Program
		p, err = programDoc(*ver, *date)
		if err != nil {
			break
		}
		if fs.Arg(0) == "man" {
			err = clidoc.Man(stdout, p)
		} else {
			err = clidoc.Bash(stdout, p)
		}
	case "conffile":
		_, err = io.WriteString(stdout, config.Template())
	default:
		fmt.Fprintf(stderr, "pbxsync gendoc: unknown output %q (man, bash or conffile)\n", fs.Arg(0))
		return 2
	}
	if err != nil {
		fmt.Fprintln(stderr, "pbxsync gendoc:", err)
		return 1
	}
	return 0
}

// helpSink is the stderr gendoc hands a command run with --help: newFlags
// sees it and leaves the command's flag set, synopsis and description
// there, so the manual page and the completion come from the very flag
// sets the commands parse.
type helpSink struct {
	io.Writer
	synopsis, description string
	fs                    *flag.FlagSet
}

// programDoc builds the Program of this binary from the usage text and
// every listed command's --help.
func programDoc(ver, date string) (clidoc.Program, error) {
	intro, cmds, outro, err := parseUsage(usage)
	if err != nil {
		return clidoc.Program{}, err
	}
	summary, rest, _ := strings.Cut(intro, "\n\n")
	p := clidoc.Program{
		Name: "pbxsync", Section: "8", Version: ver, Date: date,
		Summary:     "keep the configuration of a farm of Asterisk servers in step",
		Description: joinParas(summary, rest, outro),
		Sections:    manSections,
		SeeAlso:     []string{"systemctl(1)", "journalctl(1)", "systemd.exec(5)", "asterisk(8)"},
	}
	for _, c := range cmds {
		sink := &helpSink{Writer: io.Discard}
		if code := run([]string{"help", c.Name}, io.Discard, sink); code != 0 {
			return clidoc.Program{}, fmt.Errorf("pbxsync help %s: exit %d", c.Name, code)
		}
		if sink.fs != nil {
			c.Synopsis, c.Description = sink.synopsis, sink.description
			c.Flags = flagsOf(sink.fs, sink.synopsis)
		}
		p.Commands = append(p.Commands, c)
	}
	return p, nil
}

func joinParas(paras ...string) string {
	var kept []string
	for _, p := range paras {
		if p = strings.TrimSpace(p); p != "" {
			kept = append(kept, p)
		}
	}
	return strings.Join(kept, "\n\n")
}

// flagsOf lists the flags of fs (sorted by name, as --help prints them).
// A flag's placeholder is the word after it in the synopsis (--config
// FILE), else one named after its type; a boolean flag has none.
func flagsOf(fs *flag.FlagSet, synopsis string) []clidoc.Flag {
	var flags []clidoc.Flag
	fs.VisitAll(func(f *flag.Flag) {
		cf := clidoc.Flag{Name: f.Name, Usage: f.Usage}
		if b, ok := f.Value.(interface{ IsBoolFlag() bool }); !ok || !b.IsBoolFlag() {
			if m := regexp.MustCompile(`--` + regexp.QuoteMeta(f.Name) + ` ([A-Z][A-Z0-9_-]*)`).FindStringSubmatch(synopsis); m != nil {
				cf.Arg = m[1]
			} else {
				kind, _ := flag.UnquoteUsage(f)
				cf.Arg = map[string]string{"string": "VALUE", "int": "N", "uint": "N", "duration": "DURATION", "float": "NUMBER"}[kind]
				if cf.Arg == "" {
					cf.Arg = "VALUE"
				}
			}
		}
		switch f.DefValue {
		case "", "0", "false", "0s":
		default:
			cf.Default = f.DefValue
		}
		flags = append(flags, cf)
	})
	return flags
}

var commandLine = regexp.MustCompile(`^  ([a-z][a-z-]*)\s{2,}(\S.*)$`)

// parseUsage splits the usage text: the intro before "Usage:", the
// commands of "Commands:" (name and summary; an indented line continues
// the summary above it) and the text after the list.
func parseUsage(u string) (intro string, cmds []clidoc.Command, outro string, err error) {
	intro, rest, ok := strings.Cut(u, "\nUsage:")
	if !ok {
		return "", nil, "", fmt.Errorf("usage text has no \"Usage:\" line")
	}
	_, rest, ok = strings.Cut(rest, "\nCommands:\n")
	if !ok {
		return "", nil, "", fmt.Errorf("usage text has no \"Commands:\" list")
	}
	list, outro, _ := strings.Cut(rest, "\n\n")
	for _, l := range strings.Split(list, "\n") {
		if m := commandLine.FindStringSubmatch(l); m != nil {
			cmds = append(cmds, clidoc.Command{Name: m[1], Summary: m[2]})
			continue
		}
		if len(cmds) == 0 || !strings.HasPrefix(l, "    ") {
			return "", nil, "", fmt.Errorf("usage text: unexpected line %q in the command list", l)
		}
		cmds[len(cmds)-1].Summary += " " + strings.TrimSpace(l)
	}
	return strings.TrimSpace(intro), cmds, strings.TrimSpace(outro), nil
}

// manSections are the parts of the manual page that no --help says: where
// the files are and how the service behaves.
var manSections = []clidoc.Section{
	{Title: "FILES", Entries: []clidoc.Entry{
		{Tag: "/etc/pbxsync/pbxsync.toml", Text: "This host's configuration (a conffile of the Debian package, mode 0640: it may hold secrets). As installed it has no [node] section and the service does not start; pbxsync check --example prints every key with a comment."},
		{Tag: "/var/lib/pbxsync", Text: "data_dir (mode 0700): the node identity (" + identity.KeyFile + "), the store of generations, journals and the control socket. Kept when the package is removed, deleted when it is purged."},
		{Tag: "/lib/systemd/system/pbxsync.service", Text: "The systemd unit: Type=notify with a watchdog, sandboxed (ProtectSystem=strict). Every job path must be in ReadWritePaths=; add paths with systemctl edit pbxsync."},
		{Tag: "/etc/systemd/system/pbxsync.service.d/user.conf", Text: "Written at install on a host without an asterisk user: the agent then runs as root (the unit says User=asterisk)."},
	}},
	{Title: "EXIT STATUS", Text: "0 on success; 1 when a command fails (check: the configuration is invalid, with one FILE:LINE:COL: message per problem on stderr; check --configured: the host is not set up yet); 2 for a usage error."},
	{Title: "ENVIRONMENT", Entries: []clidoc.Entry{
		{Tag: "PBXSYNC_JOB, PBXSYNC_GENERATION, PBXSYNC_CHANGED_FILE, PBXSYNC_CHANGED_COUNT, PBXSYNC_CHANGED", Text: "Set for a job's check commands and shell actions: the job, the generation being checked, a file in data_dir listing the changed paths (relative to the job root, one per line; removed when the command ends), how many there are, and the same paths one per line while they fit in 64 KiB (a larger list is in the file only: Linux refuses a longer environment string)."},
	}},
}
