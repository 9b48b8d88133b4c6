package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"time"

	"pbxsync/internal/astgen"

	"pbxsync/internal/benchproc"
)

// initialSync is one initial sync of a tree by pbxsync and by rsync.
type initialSync struct {
	files, size, disk  int64
	rsync              time.Duration // rsync -a before pbxsync's sync
	rsyncAfter         time.Duration // the same again after it (0: not run)
	rsyncFlush         time.Duration // the syncfs right after the run before pbxsync's sync
	rsyncFlushAfter    time.Duration // the same after the run after it
	rsyncClientRSS     int64
	rsyncDaemonRSS     int64
	pbxsync            time.Duration
	srcPeak, tgtPeak   int64         // VmHWM at convergence
	srcCPU, tgtCPU     time.Duration // user + system time of each agent at convergence
	rsyncCPU           time.Duration // user + system time of rsync's client and daemon, the run before pbxsync's sync
	srcIdle, tgtIdle   int64         // VmRSS after the idle wait
	srcStore, tgtStore int64         // data_dir on disk
	load               string
	quicFloor          time.Duration // the tree's bytes over quic-go alone (quicFloor), the best of quicFloorRuns; 0: not measured
	quicFloorApart     time.Duration // the same between two processes (quicFloorApart); 0: not measured
}

// quicFloorRuns is how many times the mixed tree's bytes are sent over
// quic-go alone; the report gives the fastest.
const quicFloorRuns = 3

// restart is one agent's restart over the unchanged tree.
type restart struct {
	who       string
	took      time.Duration
	newGen    bool   // a generation was made
	applied   bool   // the target applied something
	sentAfter uint64 // content bytes the source sent since it started
	load      string
}

// syncTree times rsync -a of tree to a fresh daemon module, then pbxsync's
// initial sync of the same tree from a fresh pair of agents under base,
// then rsync -a again to another fresh module. The pair is returned
// running.
func syncTree(ctx context.Context, o options, base, tree, job string, idle bool) (*pair, initialSync, error) {
	var r initialSync
	var err error
	if r.files, r.size, r.disk, err = treeUsage(tree); err != nil {
		return nil, r, err
	}
	// the tree just generated is written back first: neither rsync's run
	// nor pbxsync's sync pays for it (see flushFS)
	if _, err := flushFS(tree); err != nil {
		return nil, r, err
	}
	r.load = benchproc.LoadAvg()
	d, err := startRsyncd(ctx, filepath.Join(base, "rsyncd"))
	if err != nil {
		return nil, r, err
	}
	progress("%s: rsync -a of %d files (%s) to a daemon on 127.0.0.1", job, r.files, mb(r.size))
	run, err := rsync(ctx, "-a", tree+"/", d.url("tree/"))
	var daemonCPU time.Duration
	r.rsyncDaemonRSS, daemonCPU = d.stopUsage()
	if err != nil {
		return nil, r, err
	}
	r.rsync, r.rsyncClientRSS, r.rsyncCPU = run.wall, run.maxRSS, run.cpu+daemonCPU
	progress("%s: rsync took %v (CPU time client %v, daemon %v)", job, r.rsync.Round(time.Millisecond), run.cpu.Round(10*time.Millisecond), daemonCPU.Round(10*time.Millisecond))
	// its writeback, before pbxsync starts (see flushFS)
	if r.rsyncFlush, err = flushFS(d.dir); err != nil {
		return nil, r, err
	}
	progress("%s: syncfs after rsync took %v", job, r.rsyncFlush.Round(time.Millisecond))
	// rsync's copy goes only after pbxsync's sync: on this machine's ext4
	// (no journal) a file created within a minute or more of many deletions
	// costs several times its usual system time (the kernel's inode
	// allocator skips recently deleted inodes one by one), so deleting
	// 100,000 files between the two runs charged pbxsync's creates alone
	// (measured: 32 µs a create before, 450 µs after).
	defer func() {
		progress("%s: removing rsync's copy", job)
		os.RemoveAll(d.dir)
	}()

	p, err := newPair(ctx, o.bin, filepath.Join(base, "pbxsync"), job, pairOpts{srcTree: tree, pprof: o.pprof, logLevel: o.logLevel})
	if err != nil {
		return nil, r, err
	}
	progress("%s: pbxsync initial sync", job)
	t0 := time.Now()
	if err := p.src.Start(o.bin); err != nil {
		return p, r, err
	}
	if err := p.tgt.Start(o.bin); err != nil {
		return p, r, err
	}
	every := 20 * time.Millisecond
	if r.files > 1000 {
		every = 100 * time.Millisecond
	}
	stopPeak := func() {}
	var initialProf chan error
	if o.pprof {
		stopPeak = peakHeapProfiles(ctx, p, base, job)
		if o.pprofInitial > 0 {
			initialProf = make(chan error, 2)
			for who, n := range map[string]*node{"source": p.src, "target": p.tgt} {
				go func() {
					if err := n.waitPprof(ctx); err != nil {
						initialProf <- err
						return
					}
					initialProf <- n.cpuProfile(ctx, o.pprofInitial, filepath.Join(base, job+"-"+who+"-initial.prof"))
				}()
			}
		}
	}
	if _, err := p.waitSync(ctx, every, o.limit); err != nil {
		stopPeak()
		return p, r, fmt.Errorf("pbxsync initial sync: %w", err)
	}
	r.pbxsync = time.Since(t0)
	stopPeak()
	for range cap(initialProf) {
		if err := <-initialProf; err != nil {
			progress("%v", err)
		}
	}
	r.srcPeak, _ = p.src.Memory()
	r.tgtPeak, _ = p.tgt.Memory()
	r.srcCPU, r.tgtCPU = p.src.CPUTime(), p.tgt.CPUTime()
	progress("%s: pbxsync took %v (peak RSS source %s, target %s; CPU time source %v, target %v)", job, r.pbxsync.Round(time.Millisecond), mb(r.srcPeak), mb(r.tgtPeak), r.srcCPU, r.tgtCPU)
	rchar, syscr := p.tgt.IO()
	progress("%s: target read %s in %d read calls (files, sockets and store)", job, mb(rchar), syscr)
	if err := sameTrees(tree, p.tgt.tree); err != nil {
		return p, r, fmt.Errorf("after the initial sync: %w", err)
	}
	if idle {
		time.Sleep(o.idle)
		_, r.srcIdle = p.src.Memory()
		_, r.tgtIdle = p.tgt.Memory()
		if o.pprof {
			for who, n := range map[string]*node{"source": p.src, "target": p.tgt} {
				anon, file := n.RSSSplit()
				progress("%s: %s idle RSS: anonymous %s, file-backed %s", job, who, mb(anon), mb(file))
			}
			for who, n := range map[string]*node{"source": p.src, "target": p.tgt} {
				if err := n.heapProfile(ctx, filepath.Join(base, job+"-"+who+"-idle.heap")); err != nil {
					progress("%v", err)
				}
			}
		}
	}
	// rsync again, into a new module, once pbxsync is done and idle: the
	// anchor is the mean of the runs before and after, so that a slower
	// or faster spell of the machine's disk does not fall on one side only
	if r.rsyncAfter, r.rsyncFlushAfter, err = rsyncOnce(ctx, filepath.Join(base, "rsyncd-after"), tree, job); err != nil {
		return p, r, err
	}
	_, _, r.srcStore, _ = treeUsage(p.src.Data)
	_, _, r.tgtStore, _ = treeUsage(p.tgt.Data)
	return p, r, nil
}

// idleForPark is how long -idle-edits lets the agents idle before each
// edit: a job lets go of an index of 10,000 items or more after 10 s
// without an event (syncer/park.go).
const idleForPark = 12 * time.Second

// benchScale: the big job of small .conf files, its edits and restarts,
// and the same edit in a 10-file job.
func benchScale(ctx context.Context, o options, rep *report) error {
	base := filepath.Join(o.work, "scale")
	tree := filepath.Join(base, "conf-tree")
	progress("generating %d .conf files in %d directories", o.files, o.dirs)
	if err := confTree(tree, o.dirs, o.files); err != nil {
		return err
	}
	p, r, err := syncTree(ctx, o, base, tree, "confs", true)
	if p != nil {
		defer p.close()
	}
	rep.scale = &r
	if err != nil {
		return err
	}
	rel := filepath.Join(fmt.Sprintf("site%03d", o.dirs/2), fmt.Sprintf("endpoint%04d.conf", o.files/o.dirs/2))
	var profiled chan error
	if o.pprof {
		// each edit takes under a second or two, and waits for the sync
		// and 200 ms after it
		d := time.Duration(o.edits) * 1500 * time.Millisecond
		profiled = make(chan error, 2)
		for who, n := range map[string]*node{"source": p.src, "target": p.tgt} {
			go func() { profiled <- n.cpuProfile(ctx, d, filepath.Join(base, "confs-"+who+"-edits.prof")) }()
		}
	}
	rep.editBig, err = edits(ctx, p, rel, o.edits)
	if profiled != nil {
		for range 2 {
			if perr := <-profiled; perr != nil {
				progress("%v", perr)
			}
		}
	}
	if err != nil {
		return fmt.Errorf("edits in the big job: %w", err)
	}
	for range o.idleEdits {
		time.Sleep(idleForPark)
		d, err := edits(ctx, p, rel, 1)
		if err != nil {
			return fmt.Errorf("an edit after an idle spell in the big job: %w", err)
		}
		rep.editIdle = append(rep.editIdle, d...)
	}
	if o.pprof {
		// what the agents hold once idle after edits: a target keeps
		// more than after the initial sync alone (the copy of the index
		// its first incremental announcement made)
		time.Sleep(o.idle)
		for _, who := range []string{"source", "target"} {
			n := map[string]*node{"source": p.src, "target": p.tgt}[who]
			anon, file := n.RSSSplit()
			progress("confs: %s idle RSS %v after the edits: anonymous %s, file-backed %s", who, o.idle, mb(anon), mb(file))
			if err := n.heapProfile(ctx, filepath.Join(base, "confs-"+who+"-edited.heap")); err != nil {
				progress("%v", err)
			}
		}
	}
	for _, who := range []string{"source", "target"} {
		rs, err := restartOne(ctx, o, p, who)
		rep.restarts = append(rep.restarts, rs)
		if err != nil {
			return fmt.Errorf("restart of the %s: %w", who, err)
		}
	}
	p.close()

	small := filepath.Join(base, "small-tree")
	if err := confTree(small, 1, 10); err != nil {
		return err
	}
	sp, err := newPair(ctx, o.bin, filepath.Join(base, "small"), "small", pairOpts{srcTree: small, logLevel: o.logLevel})
	if err != nil {
		return err
	}
	defer sp.close()
	if err := sp.src.Start(o.bin); err != nil {
		return err
	}
	if err := sp.tgt.Start(o.bin); err != nil {
		return err
	}
	if _, err := sp.waitSync(ctx, 20*time.Millisecond, o.limit); err != nil {
		return fmt.Errorf("10-file job: %w", err)
	}
	rep.editSmall, err = edits(ctx, sp, filepath.Join("site000", "endpoint0005.conf"), o.edits)
	if err != nil {
		return fmt.Errorf("edits in the 10-file job: %w", err)
	}
	return nil
}

// edits changes one line of rel n times, one edit at a time, and returns
// each change→applied time.
func edits(ctx context.Context, p *pair, rel string, n int) ([]time.Duration, error) {
	progress("%s: %d one-line edits of %s (load %s)", p.job, n, rel, benchproc.LoadAvg())
	content, err := os.ReadFile(filepath.Join(p.src.tree, rel))
	if err != nil {
		return nil, err
	}
	g := astgen.New(7)
	rchar0, syscr0 := p.tgt.IO()
	var out []time.Duration
	for range n {
		content = g.ChangeLine(content)
		took, err := p.edit(ctx, rel, content, 5*time.Minute)
		if err != nil {
			return out, err
		}
		out = append(out, took)
		// Let the source take the target's answer before the next edit.
		if _, err := p.waitSync(ctx, 20*time.Millisecond, 5*time.Minute); err != nil {
			return out, err
		}
		time.Sleep(200 * time.Millisecond)
	}
	progress("%s: edits p50 %v", p.job, p50(out).Round(time.Millisecond))
	rchar, syscr := p.tgt.IO()
	progress("%s: target read %s in %d read calls during the edits (files, sockets and store; the file is %s)", p.job, mb(rchar-rchar0), syscr-syscr0, mb(int64(len(content))))
	return out, nil
}

// restartOne stops one agent of p, starts it again over the unchanged
// tree, and times its start until the pair is back in sync.
func restartOne(ctx context.Context, o options, p *pair, who string) (restart, error) {
	rs := restart{who: who, load: benchproc.LoadAvg()}
	_, gen, err := p.inSync(ctx)
	if err != nil {
		return rs, err
	}
	applied, tgtGen, err := p.applied(ctx)
	if err != nil {
		return rs, err
	}
	n := p.src
	if who == "target" {
		n = p.tgt
	}
	progress("%s: restart of the %s over the unchanged tree", p.job, who)
	n.Stop()
	t0 := time.Now()
	if err := n.Start(o.bin); err != nil {
		return rs, err
	}
	got, err := p.waitSync(ctx, 20*time.Millisecond, o.limit)
	if err != nil {
		return rs, err
	}
	rs.took = time.Since(t0)
	rs.newGen = got != gen
	a2, g2, err := p.applied(ctx)
	if err != nil {
		return rs, err
	}
	if who == "source" {
		rs.applied = a2 > applied || g2 != tgtGen
	} else {
		rs.applied = a2 > 0 || g2 != tgtGen
	}
	if js, err := p.src.Job(ctx, p.job); err == nil {
		rs.sentAfter = js.BytesSent
	}
	progress("%s: back in sync %v after the %s started", p.job, rs.took.Round(time.Millisecond), who)
	return rs, nil
}

// benchMixed: audio plus large dialplans.
func benchMixed(ctx context.Context, o options, rep *report) error {
	base := filepath.Join(o.work, "mixed")
	tree := filepath.Join(base, "tree")
	scale := float64(o.mixedMB) / 709
	audio, plan := int(32e6*scale), int(23e6*scale)
	progress("generating the mixed tree: 16 × %s audio + 4 × %s dialplans", mb(int64(audio)), mb(int64(plan)))
	if err := mixedTree(tree, 16, audio, 4, plan); err != nil {
		return err
	}
	p, r, err := syncTree(ctx, o, base, tree, "mixed", false)
	if p != nil {
		p.close() // stopped before the floor is measured: nothing else runs beside it
	}
	rep.mixed = &r
	if err != nil {
		return err
	}
	for range quicFloorRuns {
		d, err := quicFloor(ctx, r.size)
		if err != nil {
			return err
		}
		progress("mixed: %s over quic-go alone took %v", mb(r.size), d.Round(time.Millisecond))
		if r.quicFloor == 0 || d < r.quicFloor {
			r.quicFloor = d
		}
		d, err = quicFloorApart(ctx, r.size)
		if err != nil {
			return err
		}
		progress("mixed: %s over quic-go alone between two processes took %v", mb(r.size), d.Round(time.Millisecond))
		if r.quicFloorApart == 0 || d < r.quicFloorApart {
			r.quicFloorApart = d
		}
	}
	return nil
}

func p50(d []time.Duration) time.Duration {
	if len(d) == 0 {
		return 0
	}
	s := slices.Clone(d)
	slices.Sort(s)
	return s[len(s)/2]
}

func mb(n int64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.2f GiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	default:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
}

// peakHeapProfiles samples each agent's RSS every 2 s until the returned
// function is called, and writes a heap profile whenever its RSS is the
// highest seen so far to WORK/.../JOB-{source,target}-peak.heap: what the
// heap held near the peak of the sync.
func peakHeapProfiles(ctx context.Context, p *pair, base, job string) (stop func()) {
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		best, bestAnon, bestFile := map[string]int64{}, map[string]int64{}, map[string]int64{}
		defer func() {
			for _, who := range []string{"source", "target"} {
				progress("%s: %s highest RSS sampled %s (anonymous %s, file-backed %s at their highest)", job, who, mb(best[who]), mb(bestAnon[who]), mb(bestFile[who]))
			}
		}()
		tick := time.NewTicker(2 * time.Second)
		defer tick.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
			for who, n := range map[string]*node{"source": p.src, "target": p.tgt} {
				anon, file := n.RSSSplit()
				if anon > bestAnon[who] {
					bestAnon[who] = anon
				}
				if file > bestFile[who] {
					bestFile[who] = file
				}
				if _, now := n.Memory(); now > best[who] {
					best[who] = now
					// gc=0: the profile of the last collection, without
					// forcing one that would change what is measured
					_ = n.profile(ctx, "heap", filepath.Join(base, job+"-"+who+"-peak.heap"))
				}
			}
		}
	}()
	return func() { cancel(); <-done }
}

// rsyncOnce times rsync -a of tree to a fresh daemon module in dir, and
// the syncfs right after it (flushFS), and removes the copy when done.
func rsyncOnce(ctx context.Context, dir, tree, job string) (run, flush time.Duration, err error) {
	d, err := startRsyncd(ctx, dir)
	if err != nil {
		return 0, 0, err
	}
	progress("%s: rsync -a again, after pbxsync", job)
	r, err := rsync(ctx, "-a", tree+"/", d.url("tree/"))
	_, daemonCPU := d.stopUsage()
	if err != nil {
		return 0, 0, err
	}
	if flush, err = flushFS(d.dir); err != nil {
		return 0, 0, err
	}
	progress("%s: rsync took %v (CPU time client %v, daemon %v), syncfs after it %v; removing its copy", job, r.wall.Round(time.Millisecond), r.cpu.Round(10*time.Millisecond), daemonCPU.Round(10*time.Millisecond), flush.Round(time.Millisecond))
	os.RemoveAll(d.dir)
	return r.wall, flush, nil
}
