package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"pbxsync/internal/config"
	"pbxsync/internal/control"
	"pbxsync/internal/wire"
	"pbxsync/syncer"
)

func cmdStatus(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := newFlags("status", "[--config FILE] [--json]",
		"Asks the running agent (over the control socket in data_dir) for its peers and\njobs. --json prints one object: node, peers (name, connected, rtt_ms,\nlast_seen, ...) and jobs (name, generation, state, last_error, bytes_sent,\nbytes_received, progress of a generation taking over a second, ...).", stderr)
	cfgPath := fs.String("config", defaultConfig, "configuration file")
	asJSON := fs.Bool("json", false, "print JSON")
	if code, done := parse(fs, args); done {
		return code
	}
	cfg, err := config.Load(*cfgPath)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	resp, err := control.Call(ctx, control.SocketPath(cfg.Node.DataDir), control.Request{Cmd: "status"})
	if err != nil {
		fmt.Fprintln(stderr, "pbxsync status:", err)
		return 1
	}
	if *asJSON {
		fmt.Fprintln(stdout, string(resp.Status))
		return 0
	}
	var st syncer.Status
	if err := json.Unmarshal(resp.Status, &st); err != nil {
		fmt.Fprintln(stderr, "pbxsync status: bad answer:", err)
		return 1
	}
	printStatus(stdout, &st)
	return 0
}

func printStatus(w io.Writer, st *syncer.Status) {
	fmt.Fprintf(w, "node %s  id %s  up %s\n\n", st.Node, st.ID, (time.Duration(st.Uptime) * time.Second).String())
	tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "PEER\tCONNECTED\tRTT\tLAST SEEN\tSENT\tRECEIVED\tPROBLEM")
	for _, p := range st.Peers {
		seen := "never"
		if !p.LastSeen.IsZero() {
			seen = time.Since(p.LastSeen).Round(time.Second).String() + " ago"
		}
		problem := p.LastError
		if p.Slow {
			problem = strings.TrimSuffix("slow: reads nothing since "+p.SlowSince.Local().Format(time.DateTime)+"; "+problem, "; ")
		}
		if !p.Connected && !p.DownSince.IsZero() {
			problem = strings.TrimSuffix("down since "+p.DownSince.Local().Format(time.DateTime)+"; "+problem, "; ")
		}
		fmt.Fprintf(tw, "%s\t%v\t%.1f ms\t%s\t%s\t%s\t%s\n", p.Name, yesNo(p.Connected), p.RTTMillis, seen, bytesHuman(p.BytesSent), bytesHuman(p.BytesReceived), problem)
	}
	tw.Flush()
	fmt.Fprintln(w)
	tw = tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "JOB\tROLE\tGENERATION\tSTATE\tSENT\tRECEIVED\tLAST ERROR")
	for _, j := range st.Jobs {
		last := j.LastError
		if j.Held != "" {
			last = j.Held
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%s\t%s\t%s\n", j.Name, j.Role, j.Generation, j.State, bytesHuman(j.BytesSent), bytesHuman(j.BytesReceived), last)
	}
	tw.Flush()
	for _, j := range st.Jobs {
		if j.Window != "" {
			fmt.Fprintf(w, "%s: %s\n", j.Name, j.Window)
		}
	}
	for _, j := range st.Jobs {
		switch {
		case j.Progress == nil:
		case j.Progress.Phase == syncer.PhaseScanning, j.Progress.Phase == wire.PhaseRecording && j.Progress.Generation == 0:
			// a source's own scan, or its record of what the scan found
			fmt.Fprintf(w, "%s: %s\n", j.Name, j.Progress)
		case j.Progress.Offered:
			fmt.Fprintf(w, "%s: the first generation from %s, as it offers it: %s\n", j.Name, j.Source, j.Progress)
		default:
			fmt.Fprintf(w, "%s: generation %d from %s: %s\n", j.Name, j.Progress.Generation, j.Source, j.Progress)
		}
	}
	for _, j := range st.Jobs {
		for _, p := range j.Writing {
			fmt.Fprintf(w, "%s: waiting until it is closed: %s\n", j.Name, p)
		}
	}
	for _, j := range st.Jobs {
		if len(j.Targets) == 0 {
			continue
		}
		fmt.Fprintf(w, "\n%s: %s\n", j.Name, j.Rollout)
		tw = tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "  TARGET\tGENERATION\tSTATE\tBEHIND\tREASON")
		for _, t := range j.Targets {
			reason := t.Reason
			if t.Progress != nil {
				reason = t.Progress.String()
			}
			name := t.Name
			if t.Via != "" {
				name += " via " + t.Via // reached through its site's relay
			}
			fmt.Fprintf(tw, "  %s\t%d\t%s\t%d\t%s\n", name, t.Version, t.State, t.Lag, reason)
		}
		tw.Flush()
	}
	printAsterisk(w, st.Asterisk)
}

// printAsterisk shows which log the log checks read and each job's last
// Asterisk actions, skipped reloads included.
func printAsterisk(w io.Writer, a *syncer.AsteriskStatus) {
	if a == nil {
		return
	}
	fmt.Fprintln(w)
	switch {
	case a.Log.Path != "":
		fmt.Fprintf(w, "asterisk log: %s (%s)\n", a.Log.Path, a.Log.How)
	case a.Log.Error != "":
		fmt.Fprintf(w, "asterisk log: none, log checks off: %s\n", a.Log.Error)
	default:
		fmt.Fprintf(w, "asterisk log: %s\n", a.Log.How)
	}
	names := make([]string, 0, len(a.Jobs))
	for n := range a.Jobs {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		for _, ja := range a.Jobs[n] {
			fmt.Fprintf(w, "%s generation %d, Asterisk actions:\n", n, ja.Generation)
			tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
			for _, o := range ja.Actions {
				fmt.Fprintf(tw, "  %s\t%s\t%s\n", o.Action, o.Result, o.Reason)
			}
			tw.Flush()
		}
	}
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

func bytesHuman(n uint64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := uint64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}
