// Command benchfed measures federations across sites (`make
// bench-federation`, issue 15): real pbxsync agents (built from
// ./cmd/pbxsync, one process each, driven by generated config files)
// on 127.0.0.1, their sites joined by internal/wanlink's WAN (every
// datagram between two sites crosses an emulated link with a one-way
// delay; none within a site does). It prints, side by side for the same
// changes with sites configured and with everyone in one site (today's
// direct fan-out): the bytes leaving the origin and crossing the WAN per
// change against one copy per remote site; far-site change→applied p50
// and p99; the time the rest of a site takes to get a change when its
// relay is killed mid-rollout, and what each of its hosts received over
// the WAN; and, for 32 targets across 4 sites, every target's
// change→applied p99 and the origin's peak memory. Figures, not
// pass/fail; the goals are printed beside them.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"pbxsync/internal/benchproc"
)

type options struct {
	quick        bool
	delay        time.Duration
	loss         float64
	seed         uint64
	perSite      int
	copies       int
	copyKB       int
	edits        int
	failoverKB   int
	scaleSites   int
	scalePerSite int
	scaleEdits   int
	idle         time.Duration
	limit        time.Duration
	work         string
	keep         bool
	bin          string
	only         string
}

func main() {
	var o options
	flag.BoolVar(&o.quick, "quick", false, "smoke run: 2 targets per site, 2 changes, 3 edits, a 1 MiB failover change, 8 targets in 4 sites")
	flag.DurationVar(&o.delay, "delay", 20*time.Millisecond, "one-way delay between two sites")
	flag.Float64Var(&o.loss, "loss", 0, "fraction of datagrams lost between sites (each way)")
	flag.Uint64Var(&o.seed, "seed", 1, "seed of the WAN's losses and of the changes' content")
	flag.IntVar(&o.perSite, "per-site", 4, "targets in each of the two remote sites")
	flag.IntVar(&o.copies, "changes", 5, "changes of incompressible content whose bytes are counted")
	flag.IntVar(&o.copyKB, "change-kb", 256, "size of each of them in KiB (one copy)")
	flag.IntVar(&o.edits, "edits", 20, "one-line dialplan edits whose change→applied is timed")
	flag.IntVar(&o.failoverKB, "failover-kb", 4096, "size of the change during which the relay is killed, in KiB")
	flag.IntVar(&o.scaleSites, "scale-sites", 4, "sites of the scale run")
	flag.IntVar(&o.scalePerSite, "scale-per-site", 8, "targets in each site of the scale run")
	flag.IntVar(&o.scaleEdits, "scale-edits", 10, "edits timed in the scale run")
	flag.DurationVar(&o.idle, "idle", 3*time.Second, "how long idle traffic is measured before the changes")
	flag.DurationVar(&o.limit, "limit", 3*time.Minute, "bound on any one wait")
	flag.StringVar(&o.work, "work", "", "work directory (default: a new one under $TMPDIR, removed unless -keep)")
	flag.BoolVar(&o.keep, "keep", false, "keep the work directory (agent logs in WORK/*/*/agent.log)")
	flag.StringVar(&o.bin, "pbxsync", "", "pbxsync binary (default: go build ./cmd/pbxsync into the work directory)")
	flag.StringVar(&o.only, "only", "sites,mesh,scale", "parts to run: sites (bytes, latency, failover), mesh (the same for a mesh job), scale")
	flag.Parse()
	if o.quick {
		o.quickDefaults()
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if _, err := run(ctx, o, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "benchfed:", err)
		os.Exit(1)
	}
}

// quickDefaults shrinks the run to a smoke test of seconds.
func (o *options) quickDefaults() {
	o.quick = true
	o.perSite, o.copies, o.edits, o.failoverKB = 2, 2, 3, 1024
	o.scaleSites, o.scalePerSite, o.scaleEdits = 4, 2, 2
	o.idle = time.Second
}

func progress(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "%s benchfed: %s\n", time.Now().Format("15:04:05"), fmt.Sprintf(format, args...))
}

// run measures what o says and prints the report to out.
func run(ctx context.Context, o options, out io.Writer) (*report, error) {
	if o.work == "" {
		d, err := os.MkdirTemp("", "pbxsync-benchfed-")
		if err != nil {
			return nil, err
		}
		o.work = d
		if !o.keep {
			defer os.RemoveAll(d)
		}
	}
	if o.bin == "" {
		progress("building pbxsync in %s", o.work)
		var err error
		if o.bin, err = benchproc.Build(ctx, o.work); err != nil {
			return nil, err
		}
	}
	rep := &report{started: time.Now(), loadStart: benchproc.LoadAvg(), opts: o, cmdline: strings.Join(os.Args, " ")}
	if v, err := exec.Command("git", "describe", "--always", "--dirty").Output(); err == nil {
		rep.commit = strings.TrimSpace(string(v))
	}
	parts := map[string]bool{}
	for _, p := range strings.Split(o.only, ",") {
		parts[strings.TrimSpace(p)] = true
	}
	if parts["sites"] {
		if err := benchSites(ctx, o, rep); err != nil {
			rep.errs = append(rep.errs, "sites: "+err.Error())
		}
	}
	if parts["mesh"] {
		if err := benchMesh(ctx, o, rep); err != nil {
			rep.errs = append(rep.errs, "mesh: "+err.Error())
		}
	}
	if parts["scale"] {
		if err := benchScale(ctx, o, rep); err != nil {
			rep.errs = append(rep.errs, "scale: "+err.Error())
		}
	}
	rep.loadEnd = benchproc.LoadAvg()
	rep.print(out)
	if len(rep.errs) > 0 {
		return rep, fmt.Errorf("%d parts failed: %s", len(rep.errs), strings.Join(rep.errs, "; "))
	}
	return rep, nil
}
