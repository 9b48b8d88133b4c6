// Command benchscale measures pbxsync at scale against rsync, side by side in
// one run (`make bench-scale`): it generates the trees of issue 13 (100
// directories of small .conf files; audio plus large dialplans; 2 and 5 MB
// dialplans), runs two real agents (built from ./cmd/pbxsync, driven by
// config files, convergence read from their status) and `rsync -a` to an
// rsync daemon on 127.0.0.1, and prints a markdown report: initial sync
// times, peak and idle RSS, one-line edit latency in a big and a 10-file
// job, restart over an unchanged tree, store size, and the wire bytes of
// edits (counted by internal/wanlink, outside the agents) against
// `rsync -z`. Figures, not pass/fail.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"runtime"
	"strings"
	"syscall"
	"time"

	"pbxsync/internal/benchproc"
)

type options struct {
	files, dirs  int
	mixedMB      int
	dialplansMB  []int
	edits        int
	idleEdits    int // one-line edits each after the agents let go of their index while idle
	idle         time.Duration
	limit        time.Duration
	work         string
	keep         bool
	bin          string
	only         string
	pprof        bool
	pprofInitial time.Duration // with pprof: CPU-profile each agent over this much of the initial sync
	logLevel     string
	fs           string // size of a fresh loop-mounted ext4 to run on, "" for the work directory's own
}

func main() {
	if os.Getenv(quicReceiverEnv) != "" {
		// the receiving end of quicFloorApart, started by this program
		if err := runQuicReceiver(os.Stdout); err != nil {
			fmt.Fprintln(os.Stderr, "benchscale: quic receiver:", err)
			os.Exit(1)
		}
		return
	}
	var o options
	quick := flag.Bool("quick", false, "smoke run: 1,000 files in 10 dirs, a 36 MB mixed tree, a 2 MB dialplan, 5 edits")
	flag.IntVar(&o.files, "files", 100000, "small .conf files in the big job")
	flag.IntVar(&o.dirs, "dirs", 100, "directories they are spread over")
	flag.IntVar(&o.mixedMB, "mixed-mb", 709, "the mixed tree as the issue names it: 709 gives 16 × 32 MB audio + 4 × 23 MB dialplans (604 MB; the issue calls it 709 MB), other values scale the files linearly")
	dialplans := flag.String("dialplans", "2,5", "dialplan sizes in MB for the wire-bytes runs")
	flag.IntVar(&o.edits, "edits", 11, "one-line edits timed in each job (p50 over them)")
	flag.IntVar(&o.idleEdits, "idle-edits", 0, "one-line edits in the big job after the others, each after the agents were idle long enough to let go of their index (idleForPark, 12 s each)")
	flag.DurationVar(&o.idle, "idle", 10*time.Second, "how long the agents idle after the initial sync before their RSS is read")
	flag.DurationVar(&o.limit, "limit", 60*time.Minute, "bound on any one sync")
	flag.StringVar(&o.work, "work", "", "work directory (default: a new one under $TMPDIR, removed unless -keep)")
	flag.BoolVar(&o.keep, "keep", false, "keep the work directory")
	flag.StringVar(&o.bin, "pbxsync", "", "pbxsync binary (default: go build ./cmd/pbxsync into the work directory)")
	flag.StringVar(&o.only, "only", "scale,mixed,wire", "parts to run: scale (big and 10-file jobs), mixed, wire")
	flag.BoolVar(&o.pprof, "pprof", false, "serve each agent's profiles on a loopback port (PBXSYNC_PPROF) and write a CPU profile of each agent during the big job's edits to WORK/scale/confs-{source,target}-edits.prof; after the edits, wait -idle again and log each agent's RSS and write its heap profile to WORK/scale/confs-{source,target}-edited.heap")
	flag.DurationVar(&o.pprofInitial, "pprof-initial", 0, "with -pprof: write a CPU profile of each agent over this much of the initial sync (from its start) to WORK/<part>/<job>-{source,target}-initial.prof; keep it shorter than the sync")
	flag.StringVar(&o.fs, "fs", "", "run rsync and the agents on a fresh ext4 file system of this size (e.g. 16G) in a loop device (direct I/O) mounted at WORK/fs, taken down at the end (root; -keep keeps its image, WORK/fs.img): back-to-back runs on a file system that just had trees deleted are not comparable")
	flag.StringVar(&o.logLevel, "log-level", "warn", "the agents' log_level (debug or info shows the phases of an initial sync in WORK/*/agent.log)")
	flag.Parse()
	if *quick {
		o.files, o.dirs, o.mixedMB, o.edits, o.idle = 1000, 10, 36, 5, 3*time.Second
		if !flagSet("dialplans") {
			*dialplans = "2"
		}
	}
	for _, s := range strings.Split(*dialplans, ",") {
		var mb int
		if _, err := fmt.Sscan(strings.TrimSpace(s), &mb); err != nil || mb <= 0 {
			fmt.Fprintf(os.Stderr, "benchscale: -dialplans %q: want sizes in MB like 2,5\n", *dialplans)
			os.Exit(2)
		}
		o.dialplansMB = append(o.dialplansMB, mb)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, o, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "benchscale:", err)
		os.Exit(1)
	}
}

func flagSet(name string) bool {
	set := false
	flag.Visit(func(f *flag.Flag) { set = set || f.Name == name })
	return set
}

func progress(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "%s benchscale: %s\n", time.Now().Format("15:04:05"), fmt.Sprintf(format, args...))
}

func run(ctx context.Context, o options, out io.Writer) error {
	if _, err := exec.LookPath("rsync"); err != nil {
		return fmt.Errorf("rsync not found (apt-get install -y rsync): %w", err)
	}
	if o.work == "" {
		d, err := os.MkdirTemp("", "pbxsync-benchscale-")
		if err != nil {
			return err
		}
		o.work = d
		if !o.keep {
			defer os.RemoveAll(d)
		}
	}
	fsNote := "the work directory's own"
	if o.fs != "" {
		dir, takeDown, err := freshFS(ctx, o.work, o.fs, o.keep)
		if err != nil {
			return err
		}
		defer func() {
			if err := takeDown(); err != nil {
				progress("%v", err)
			}
		}()
		o.work, fsNote = dir, "a fresh ext4 of "+o.fs+" in a loop device with direct I/O"
	}
	if o.bin == "" {
		progress("building pbxsync into %s", o.work)
		bin, err := benchproc.Build(ctx, o.work)
		if err != nil {
			return err
		}
		o.bin = bin
	}
	rep := &report{started: time.Now(), loadStart: benchproc.LoadAvg(), opts: o, rsync: rsyncVersion(), cmdline: strings.Join(os.Args, " "), fs: fsNote}
	if v, err := exec.Command("git", "describe", "--always", "--dirty").Output(); err == nil {
		rep.commit = strings.TrimSpace(string(v))
	}
	parts := map[string]bool{}
	for _, p := range strings.Split(o.only, ",") {
		parts[strings.TrimSpace(p)] = true
	}
	var errs []string
	if parts["scale"] {
		if err := benchScale(ctx, o, rep); err != nil {
			errs = append(errs, "scale: "+err.Error())
		}
	}
	if parts["mixed"] {
		if err := benchMixed(ctx, o, rep); err != nil {
			errs = append(errs, "mixed: "+err.Error())
		}
	}
	if parts["wire"] {
		if err := benchWire(ctx, o, rep); err != nil {
			errs = append(errs, "wire: "+err.Error())
		}
	}
	rep.loadEnd = benchproc.LoadAvg()
	rep.errs = errs
	rep.print(out)
	if len(errs) > 0 {
		return fmt.Errorf("%d parts failed: %s", len(errs), strings.Join(errs, "; "))
	}
	return nil
}

// cpus is the number of CPUs, for the report.
func cpus() int { return runtime.NumCPU() }
