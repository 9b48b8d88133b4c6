package main

import (
	"fmt"
	"io"
	"runtime"
	"strings"
	"time"
)

// report gathers the figures of one run and prints them as markdown.
type report struct {
	started            time.Time
	loadStart, loadEnd string
	commit, cmdline    string
	opts               options
	modes              []*modeRun // direct fan-out, then sites
	meshModes          []*modeRun // a mesh job: one site, then sites
	scale              *scaleRun
	errs               []string
}

// perChange returns the mean bytes per change leaving the origin and
// crossing the WAN, from the change until every target applied it: the
// idle traffic of that time (keep-alives, state) included, as it is on a
// real link.
func (m *modeRun) perChange() (origin, wan float64) {
	for _, c := range m.copies {
		origin += float64(c.origin)
		wan += float64(c.wan)
	}
	n := float64(max(1, len(m.copies)))
	return origin / n, wan / n
}

// farLatencies returns every far target's change→applied over the edits.
func (m *modeRun) farLatencies(far map[string]bool) []time.Duration {
	var out []time.Duration
	for _, c := range m.edits {
		for name, d := range c.latency {
			if far[name] {
				out = append(out, d)
			}
		}
	}
	return out
}

// relayed says whether the origin's status showed any target reached
// through a relay.
func (m *modeRun) relayed() bool {
	for _, v := range m.via {
		if v != "" {
			return true
		}
	}
	return false
}

func (r *report) print(w io.Writer) {
	o := r.opts
	rtt := 2 * o.delay
	fmt.Fprintf(w, "## bench-federation (%s)\n\n", r.started.UTC().Format("2006-01-02 15:04 UTC"))
	fmt.Fprintf(w, "`%s` at %s; %d CPUs, load %s → %s; sites %v apart each way (RTT %v), loss %.3g, real pbxsync agents on 127.0.0.1 joined by internal/wanlink.\n\n",
		r.cmdline, r.commit, runtime.NumCPU(), r.loadStart, r.loadEnd, o.delay, rtt, o.loss)
	if len(r.modes) > 0 {
		fmt.Fprintf(w, "### Two remote sites × %d targets, the origin alone in its site\n\n", o.perSite)
		r.modeTable(w, r.modes)
	}
	if len(r.meshModes) > 0 {
		fmt.Fprintf(w, "### A mesh job: two remote sites × %d members, the member that changes alone in its site\n\n", o.perSite)
		r.modeTable(w, r.meshModes)
	}
	for _, m := range r.modes {
		r.failoverTable(w, m)
	}
	if s := r.scale; s != nil {
		fmt.Fprintf(w, "### %d targets across %d sites (sites configured, the origin in dc1)\n\n", s.targets, s.sites)
		fmt.Fprint(w, "| | measured | goal |\n|---|---|---|\n")
		fmt.Fprintf(w, "| initial sync of a small tree to every target, from the agents' start | %v | |\n", ms(s.initial))
		fmt.Fprintf(w, "| change→applied p50, every target, %d one-line edits | %v | |\n", len(s.last), ms(percentile(s.latencies, 50)))
		fmt.Fprintf(w, "| change→applied p99, every target | %v | ≤ 1 s |\n", ms(percentile(s.latencies, 99)))
		fmt.Fprintf(w, "| change→all applied (the last target), p99 over the edits | %v | ≤ 1 s |\n", ms(percentile(s.last, 99)))
		fmt.Fprintf(w, "| origin peak RSS (VmHWM) | %.1f MiB | ≤ 80 MB |\n\n", float64(s.originPeak)/(1<<20))
	}
	for _, e := range r.errs {
		fmt.Fprintf(w, "**Failed:** %s\n\n", e)
	}
}

// modeTable prints the comparison of modes (the same layout and changes,
// sites configured or not).
func (r *report) modeTable(w io.Writer, modes []*modeRun) {
	o := r.opts
	rtt := 2 * o.delay
	remote := 2
	unit := float64(o.copyKB << 10)
	fmt.Fprintf(w, "One copy = one change of %d KiB of incompressible content (%d changes); bytes are UDP payload from the change until every target applied it, idle traffic of that time included (its rate is below); ideal = one copy per remote site = %d copies.\n\n", o.copyKB, o.copies, remote)
	fmt.Fprint(w, "| | "+strings.Join(names(modes), " | ")+" | goal |\n|---|"+strings.Repeat("---|", len(modes))+"---|\n")
	row := func(label, goal string, cell func(m *modeRun) string) {
		cells := make([]string, len(modes))
		for i, m := range modes {
			cells[i] = cell(m)
		}
		fmt.Fprintf(w, "| %s | %s | %s |\n", label, strings.Join(cells, " | "), goal)
	}
	row("bytes leaving the origin per change", "", func(m *modeRun) string {
		or, _ := m.perChange()
		return fmt.Sprintf("%s (%.2f copies)", kib(or), or/unit)
	})
	row("… against the ideal (one copy per remote site)", fmt.Sprintf("sites ≤ 1.2×, direct %d×", o.perSite), func(m *modeRun) string {
		or, _ := m.perChange()
		return fmt.Sprintf("%.2f×", or/unit/float64(remote))
	})
	row("bytes crossing the WAN per change (both ways)", "", func(m *modeRun) string {
		_, wn := m.perChange()
		return fmt.Sprintf("%s (%.2f copies)", kib(wn), wn/unit)
	})
	row("idle: origin sends, WAN carries", "", func(m *modeRun) string {
		return fmt.Sprintf("%s/s, %s/s", kib(m.idleOrigin), kib(m.idleWAN))
	})
	row(fmt.Sprintf("far-site change→applied p50 (one-line edit, %d edits × %d far targets)", o.edits, 2*o.perSite),
		fmt.Sprintf("≤ RTT + 50 ms = %v", rtt+50*time.Millisecond), func(m *modeRun) string {
			p := percentile(m.farLatencies(m.farSet()), 50)
			return fmt.Sprintf("%v (%.2f RTT)", ms(p), float64(p)/float64(rtt))
		})
	row("far-site change→applied p99", "", func(m *modeRun) string {
		return ms(percentile(m.farLatencies(m.farSet()), 99)).String()
	})
	if modes[0].mesh {
		fmt.Fprintln(w)
		return
	}
	row("targets reached through a relay (origin's status, via)", "", func(m *modeRun) string {
		n := 0
		for _, v := range m.via {
			if v != "" {
				n++
			}
		}
		return fmt.Sprintf("%d of %d", n, m.targets)
	})
	fmt.Fprintln(w)
}

// failoverTable prints what killing a relay mid-rollout cost in mode m.
func (r *report) failoverTable(w io.Writer, m *modeRun) {
	if m.failover == nil {
		return
	}
	fv := m.failover
	fmt.Fprintf(w, "### Relay killed mid-rollout (%s)\n\n", m.name)
	fmt.Fprintf(w, "A change of %d KiB; `kill -9` of the relay %s once it had received %s of it over the WAN (%v after the change).\n\n",
		fv.size>>10, fv.relay, kib(float64(fv.relayHad)), ms(fv.killedAt))
	fmt.Fprint(w, "| | measured | goal |\n|---|---|---|\n")
	fmt.Fprintf(w, "| the rest of its site (%d hosts) applied the change, after the kill | %v | ≤ 5 s |\n", fv.others, ms(fv.took))
	fmt.Fprintf(w, "| most bytes any of them received over the WAN for it | %s (%.2f copies) | < 2 copies (no host gets it twice) |\n", kib(float64(fv.maxInto)), float64(fv.maxInto)/float64(fv.size))
	fmt.Fprintf(w, "| bytes into the site over the WAN for it, the dead relay included | %s (%.2f copies) | |\n", kib(float64(fv.siteInto)), float64(fv.siteInto)/float64(fv.size))
	if !m.relayed() {
		fmt.Fprintln(w, "\nNo target was reached through a relay in this run: these are direct fan-out's figures (each host gets its own copy from the origin).")
	}
	fmt.Fprintln(w)
}

func (m *modeRun) farSet() map[string]bool { return m.farNames }

func names(ms []*modeRun) []string {
	out := make([]string, len(ms))
	for i, m := range ms {
		out[i] = m.name
	}
	return out
}

func kib(b float64) string {
	if b >= 1<<20 {
		return fmt.Sprintf("%.2f MiB", b/(1<<20))
	}
	return fmt.Sprintf("%.1f KiB", b/(1<<10))
}

func ms(d time.Duration) time.Duration { return d.Round(time.Millisecond) }
