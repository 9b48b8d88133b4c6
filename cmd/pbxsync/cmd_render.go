package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"pbxsync/internal/config"
	"pbxsync/internal/control"
	"pbxsync/internal/tmpl"
)

// Vars answers the control socket's "vars" (pbxsync render --node): the
// template values of this node or of a peer, as the agent knows them.
func (c agentControl) Vars(node string) (control.NodeVars, error) {
	d, err := c.a.NodeVars(node)
	if err != nil {
		return control.NodeVars{}, err
	}
	return control.NodeVars{Node: d.Node.Name, Site: d.Node.Site, Vars: d.Vars}, nil
}

func cmdRender(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := newFlags("render", "[--config FILE] --job JOB [--node NAME] FILE.tmpl",
		"Prints what a template renders to on a host, so that it can be checked before it\nis saved into the job's tree: Go text/template with .Node.Name, .Node.Site and\n.Vars.KEY from that host's [node] table and [node.vars]; a variable that is\nnot set is an error (FILE:LINE:COL), as it is on the agent.\n\nWithout --node (or with this node's name) the values come from the\nconfiguration file. A peer's values are known only to that peer: the running\nagent here asks nothing, it shows what the peer last told it (a node tells\nits peers its site and vars while one of its jobs has templates). Without a\nrunning agent, or for a peer that has not told it, render says so: run it on\nthat host instead.", stderr)
	cfgPath := fs.String("config", defaultConfig, "configuration file")
	jobName := fs.String("job", "", "job name (required)")
	node := fs.String("node", "", "render as this node (default: this one)")
	file, code, done := parseWithFile(fs, args)
	if done {
		return code
	}
	cfg, ok := loadJobConfig("render", *cfgPath, *jobName, stderr)
	if !ok {
		return 1
	}
	j, _ := cfg.JobByName(*jobName)
	if len(j.Templates) == 0 {
		fmt.Fprintf(stderr, "pbxsync render: job %q has no templates (set templates = [\"*.tmpl\"] in its [[job]] in %s)\n", j.Name, cfg.File)
		return 1
	}
	text, err := os.ReadFile(file)
	if err != nil {
		fmt.Fprintln(stderr, "pbxsync render:", err)
		return 1
	}
	data, err := renderData(ctx, cfg, *node)
	if err != nil {
		fmt.Fprintln(stderr, "pbxsync render:", err)
		return 1
	}
	if rel, err := filepath.Rel(j.Path, absPath(file)); err == nil && !strings.HasPrefix(rel, "..") {
		ts, err := tmpl.Compile(j.Templates)
		if err == nil && !ts.IsTemplate(filepath.ToSlash(rel)) {
			fmt.Fprintf(stderr, "pbxsync render: note: %s is in the tree of job %q but is no template of it (templates = %q): the agent syncs it as it is\n", file, j.Name, j.Templates)
		}
	}
	out, err := tmpl.Render(file, text, data)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	stdout.Write(out)
	return 0
}

// renderData is what node's templates see: this node's from cfg, a
// peer's from the running agent.
func renderData(ctx context.Context, cfg *config.Config, node string) (tmpl.Data, error) {
	if node == "" || node == cfg.Node.Name {
		return tmpl.Data{Node: tmpl.Node{Name: cfg.Node.Name, Site: cfg.Node.Site}, Vars: cfg.Node.Vars}, nil
	}
	if _, ok := cfg.PeerByName(node); !ok {
		return tmpl.Data{}, fmt.Errorf("%q is neither this node (%s) nor a [[peer]] in %s", node, cfg.Node.Name, cfg.File)
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	resp, err := control.Call(ctx, control.SocketPath(cfg.Node.DataDir), control.Request{Cmd: "vars", Node: node})
	switch {
	case errors.Is(err, control.ErrNoAgent):
		return tmpl.Data{}, fmt.Errorf("the [node.vars] of %s are in %s's own configuration; this agent learns them from %s once it runs and %s connects, and it is not running: start it, or run pbxsync render on %s (%v)", node, node, node, node, node, err)
	case err != nil:
		return tmpl.Data{}, fmt.Errorf("the values of node %s: %w", node, err)
	case resp.Vars == nil:
		return tmpl.Data{}, fmt.Errorf("the agent did not answer with the values of node %s", node)
	}
	return tmpl.Data{Node: tmpl.Node{Name: resp.Vars.Node, Site: resp.Vars.Site}, Vars: resp.Vars.Vars}, nil
}

// parseWithFile parses flags around exactly one positional argument (the
// flags may come before or after it).
func parseWithFile(fs *flag.FlagSet, args []string) (string, int, bool) {
	var files []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return "", 0, true
			}
			return "", 2, true
		}
		if fs.NArg() == 0 {
			break
		}
		files = append(files, fs.Arg(0))
		args = fs.Args()[1:]
	}
	if len(files) != 1 {
		fmt.Fprintf(fs.Output(), "pbxsync %s: want one template file, got %d\n", fs.Name(), len(files))
		fs.Usage()
		return "", 2, true
	}
	return files[0], 0, false
}

func absPath(p string) string {
	a, err := filepath.Abs(p)
	if err != nil {
		return p
	}
	return a
}
