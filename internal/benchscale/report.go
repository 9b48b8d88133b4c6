package main

import (
	"fmt"
	"io"
	"strings"
	"time"
)

// report gathers the figures of one run and prints them as markdown.
type report struct {
	started            time.Time
	loadStart, loadEnd string
	opts               options
	rsync, commit      string
	cmdline            string
	fs                 string // what file system the trees were on

	scale              *initialSync
	editBig, editSmall []time.Duration
	editIdle           []time.Duration // -idle-edits: each after an idle spell
	restarts           []restart
	mixed              *initialSync
	wire               []wireEdit
	errs               []string
}

func secs(d time.Duration) string { return fmt.Sprintf("%.2f s", d.Seconds()) }

func ratio(a, b float64) string {
	if b == 0 {
		return "—"
	}
	return fmt.Sprintf("%.2f×", a/b)
}

func (r *report) print(w io.Writer) {
	fmt.Fprintf(w, "## benchscale %s\n\n", r.started.UTC().Format("2006-01-02 15:04 MST"))
	fmt.Fprintf(w, "- commit `%s`, %d CPUs, load average %s at the start, %s at the end\n", r.commit, cpus(), r.loadStart, r.loadEnd)
	fmt.Fprintf(w, "- %s; command: `%s`\n", r.rsync, r.cmdline)
	fmt.Fprintf(w, "- file system: %s\n", r.fs)
	fmt.Fprintf(w, "- took %v\n\n", time.Since(r.started).Round(time.Second))
	if s := r.scale; s != nil {
		fmt.Fprintf(w, "### Big job: %d small .conf files in %d directories (%s, %s on disk)\n\n", s.files, r.opts.dirs, mb(s.size), mb(s.disk))
		fmt.Fprintln(w, "| measure | pbxsync | anchor, same run | ratio | goal |")
		fmt.Fprintln(w, "|---|---|---|---|---|")
		r.syncRows(w, s, "1.5×")
		fmt.Fprintf(w, "| RSS idle %v after the sync | source %s, target %s | — | — | ≤ 40 MB per agent |\n", r.opts.idle, mb(s.srcIdle), mb(s.tgtIdle))
		if len(r.editBig) > 0 || len(r.editSmall) > 0 {
			fmt.Fprintf(w, "| one-line edit of one file, change→applied p50 (%d edits; the first after the agents were idle) | %s (all: %s) | the same edit in a 10-file job: %s (all: %s) | %s | ≤ 1.5× |\n",
				r.opts.edits, ms(p50(r.editBig)), msList(r.editBig), ms(p50(r.editSmall)), msList(r.editSmall), ratio(float64(p50(r.editBig)), float64(p50(r.editSmall))))
		}
		if len(r.editBig) > 0 && len(r.editSmall) > 0 {
			// the edit an admin makes most: after the agents let go of
			// their index while idle (a large job reads it back first)
			fmt.Fprintf(w, "| the first of those edits, after the agents were idle %v | %s | the 10-file job's p50: %s | %s | well under 1 s (the issue sets none) |\n",
				r.opts.idle, ms(r.editBig[0]), ms(p50(r.editSmall)), ratio(float64(r.editBig[0]), float64(p50(r.editSmall))))
		}
		if len(r.editIdle) > 0 && len(r.editSmall) > 0 {
			fmt.Fprintf(w, "| one-line edit, each after the agents were idle %v (they read their index back), p50 (%d edits) | %s (all: %s) | the 10-file job's p50: %s | %s | well under 1 s (the issue sets none) |\n",
				idleForPark, len(r.editIdle), ms(p50(r.editIdle)), msList(r.editIdle), ms(p50(r.editSmall)), ratio(float64(p50(r.editIdle)), float64(p50(r.editSmall))))
		}
		for _, rs := range r.restarts {
			what := "no generation made"
			if rs.newGen || rs.applied {
				what = "**a generation was made or applied**"
			}
			fmt.Fprintf(w, "| restart of the %s over the unchanged tree, start → back in sync (load %s) | %s (%s; source sent %d content bytes since) | — | — | ≤ 3 s, nothing sent |\n",
				rs.who, rs.load, secs(rs.took), what, rs.sentAfter)
		}
		fmt.Fprintf(w, "| store (data_dir) on disk after the initial sync | source %s, target %s | tree on disk %s | %s, %s | ≤ 1.2× |\n\n",
			mb(s.srcStore), mb(s.tgtStore), mb(s.disk), ratio(float64(s.srcStore), float64(s.disk)), ratio(float64(s.tgtStore), float64(s.disk)))
	}
	if s := r.mixed; s != nil {
		fmt.Fprintf(w, "### Mixed tree: 16 audio files + 4 dialplans (%d files, %s)\n\n", s.files, mb(s.size))
		fmt.Fprintln(w, "| measure | pbxsync | anchor, same run | ratio | goal |")
		fmt.Fprintln(w, "|---|---|---|---|---|")
		r.syncRows(w, s, "1.0×")
		if s.quicFloor > 0 {
			anchor := s.rsync
			if s.rsyncAfter > 0 {
				anchor = (s.rsync + s.rsyncAfter) / 2
			}
			fmt.Fprintf(w, "| the same bytes over quic-go alone: one stream on 127.0.0.1, both ends in one process, from memory to nothing, fastest of %d | %s | `rsync -a` as above: %s | %s | — |\n",
				quicFloorRuns, secs(s.quicFloor), secs(anchor), ratio(s.quicFloor.Seconds(), anchor.Seconds()))
			if s.quicFloorApart > 0 {
				fmt.Fprintf(w, "| the same bytes over quic-go alone between two processes on 127.0.0.1, as the two agents are, from memory to nothing, fastest of %d (the least a sync between two agents over this QUIC stack takes here) | %s | `rsync -a` as above: %s | %s | — |\n",
					quicFloorRuns, secs(s.quicFloorApart), secs(anchor), ratio(s.quicFloorApart.Seconds(), anchor.Seconds()))
			}
		}
		fmt.Fprintln(w)
	}
	if len(r.wire) > 0 {
		fmt.Fprintln(w, "### Wire bytes of edits of a generated dialplan")
		fmt.Fprintln(w)
		fmt.Fprintln(w, "pbxsync: UDP payload bytes both ways through internal/wanlink (outside the agents), from the edit until the source")
		fmt.Fprintln(w, "saw the target's answer, pings and state messages included. rsync: `rsync -a -z -I --stats` of the same file to a")
		fmt.Fprintln(w, "daemon on 127.0.0.1 holding the previous version, Total bytes sent + received.")
		fmt.Fprintln(w)
		fmt.Fprintln(w, "| edit | dialplan | peers apart (RTT) | pbxsync bytes | change→applied | rsync -z bytes | ratio | goal | idle link B/s |")
		fmt.Fprintln(w, "|---|---|---|---|---|---|---|---|---|")
		for _, e := range r.wire {
			goal := "≤ 1.0×"
			if strings.HasPrefix(e.name, "one line changed") {
				goal = "≤ 0.1×"
			}
			apart := "< 1 ms"
			if e.rtt > 0 {
				apart = fmt.Sprintf("%d ms", e.rtt.Milliseconds())
			}
			fmt.Fprintf(w, "| %s | %d MB | %s | %s | %s | %s | %s | %s | %.0f |\n", e.name, e.sizeMB, apart, thousands(int64(e.pbxsync)), ms(e.took), thousands(e.rsync), ratio(float64(e.pbxsync), float64(e.rsync)), goal, e.idleBps)
		}
		fmt.Fprintln(w)
	}
	for _, e := range r.errs {
		fmt.Fprintf(w, "**failed:** %s\n\n", e)
	}
}

func (r *report) syncRows(w io.Writer, s *initialSync, goal string) {
	anchor, rs := s.rsync, secs(s.rsync)
	if s.rsyncAfter > 0 {
		anchor = (s.rsync + s.rsyncAfter) / 2
		rs = fmt.Sprintf("%s (mean of %s before and %s after pbxsync)", secs(anchor), secs(s.rsync), secs(s.rsyncAfter))
	}
	fmt.Fprintf(w, "| initial sync between two agents on 127.0.0.1 (load %s) | %s | `rsync -a` to an rsync daemon on 127.0.0.1: %s | %s | ≤ %s |\n",
		s.load, secs(s.pbxsync), rs, ratio(s.pbxsync.Seconds(), anchor.Seconds()), goal)
	durable, ds := s.rsync+s.rsyncFlush, fmt.Sprintf("%s + %s", secs(s.rsync), secs(s.rsyncFlush))
	if s.rsyncAfter > 0 {
		durable = (s.rsync + s.rsyncFlush + s.rsyncAfter + s.rsyncFlushAfter) / 2
		ds = fmt.Sprintf("%s (mean of %s + %s before and %s + %s after pbxsync)", secs(durable), secs(s.rsync), secs(s.rsyncFlush), secs(s.rsyncAfter), secs(s.rsyncFlushAfter))
	}
	fmt.Fprintf(w, "| the same, against rsync's time to disk (pbxsync's apply is durable) | %s | `rsync -a`, then `syncfs` of its file system: %s | %s | — |\n",
		secs(s.pbxsync), ds, ratio(s.pbxsync.Seconds(), durable.Seconds()))
	if s.srcCPU > 0 && s.rsyncCPU > 0 {
		// what the sync costs the machine beside its wall time: on two cores a sync cannot take less wall time than half its CPU time
		fmt.Fprintf(w, "| CPU time of the sync (user + system), both ends | source %s + target %s = %s | rsync client and daemon (run before): %s | %s | — |\n",
			secs(s.srcCPU), secs(s.tgtCPU), secs(s.srcCPU+s.tgtCPU), secs(s.rsyncCPU), ratio((s.srcCPU+s.tgtCPU).Seconds(), s.rsyncCPU.Seconds()))
	}
	fmt.Fprintf(w, "| peak RSS during the sync (VmHWM) | source %s, target %s | rsync client %s, daemon %s | %s | ≤ 80 MB per agent |\n",
		mb(s.srcPeak), mb(s.tgtPeak), mb(s.rsyncClientRSS), mb(s.rsyncDaemonRSS), againstMB(max(s.srcPeak, s.tgtPeak), peakGoalBytes))
}

// peakGoalBytes is issue 13's peak RSS goal per agent: 80 MB, which is
// 76.29 MiB (the rows print MiB; a pass once read 76.3 MiB as under it).
const peakGoalBytes = 80_000_000

// againstMB is the larger of the two agents' figures, n bytes, in MB as the
// goal of goal bytes counts them, and whether it is over.
func againstMB(n, goal int64) string {
	verdict := "under the goal"
	if n > goal {
		verdict = "OVER the goal"
	}
	return fmt.Sprintf("larger: %.1f MB, %s", float64(n)/1e6, verdict)
}

func ms(d time.Duration) string { return fmt.Sprintf("%d ms", d.Milliseconds()) }

func msList(ds []time.Duration) string {
	var s []string
	for _, d := range ds {
		s = append(s, fmt.Sprint(d.Milliseconds()))
	}
	return strings.Join(s, ", ") + " ms"
}

func thousands(n int64) string {
	s := fmt.Sprint(n)
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	return b.String()
}
