package main

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"pbxsync/internal/testwait"
)

// TestQuickRun runs the smoke mode of make bench-federation (a smaller
// scale part) so that the program does not rot: every part completes and
// its figures obey what physics and the layout impose.
func TestQuickRun(t *testing.T) {
	t.Parallel()
	var o options
	o.quickDefaults()
	o.delay, o.seed, o.copyKB, o.only = 20*time.Millisecond, 1, 64, "sites,mesh,scale"
	o.scaleSites, o.scalePerSite, o.idle = 2, 2, 500*time.Millisecond
	o.limit, o.work = testwait.Limit(), t.TempDir()
	var out bytes.Buffer
	rep, err := run(testwait.Context(t), o, &out)
	if err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	if len(rep.modes) != 2 || rep.scale == nil {
		t.Fatalf("report lacks parts: %d modes, scale %v", len(rep.modes), rep.scale)
	}
	direct, sites := rep.modes[0], rep.modes[1]
	// Direct fan-out sends every far target its own copy.
	unit := float64(o.copyKB << 10)
	for _, c := range direct.copies {
		if float64(c.origin) < float64(direct.far)*unit {
			t.Errorf("direct fan-out: the origin sent %d bytes for a change of %.0f to %d far targets", c.origin, unit, direct.far)
		}
	}
	// Relaying sends each remote site one copy: fewer bytes than one per
	// far target.
	d, _ := direct.perChange()
	if s, _ := sites.perChange(); s >= d {
		t.Errorf("the origin sent %.0f bytes per change with sites, %.0f with direct fan-out:\n%s", s, d, out.String())
	}
	for _, m := range rep.modes {
		// A far target cannot apply a change before it crossed the WAN.
		lat := m.farLatencies(m.farNames)
		if len(lat) != o.edits*m.far {
			t.Errorf("%s: %d far latencies, want %d", m.name, len(lat), o.edits*m.far)
		}
		if p := percentile(lat, 0); p < o.delay {
			t.Errorf("%s: a far target applied %v after the change, less than the one-way delay %v", m.name, p, o.delay)
		}
	}
	// A mesh job through relays: one copy per remote site too.
	if len(rep.meshModes) != 2 {
		t.Fatalf("report has %d mesh modes, want 2", len(rep.meshModes))
	}
	md, _ := rep.meshModes[0].perChange()
	if ms, _ := rep.meshModes[1].perChange(); ms >= md || ms > 1.5*2*unit {
		t.Errorf("mesh: the changing member sent %.0f bytes per change with sites, %.0f in one site (one copy: %.0f, 2 remote sites):\n%s", ms, md, unit, out.String())
	}
	if fv := sites.failover; fv == nil || fv.took <= 0 || fv.others != o.perSite-1 || fv.relayHad == 0 {
		t.Errorf("failover: %+v", fv)
	}
	if s := rep.scale; len(s.latencies) != o.scaleEdits*s.targets || s.originPeak <= 0 {
		t.Errorf("scale: %d latencies for %d edits × %d targets, origin peak %d", len(s.latencies), o.scaleEdits, s.targets, s.originPeak)
	}
	for _, want := range []string{"bytes leaving the origin per change", "Relay killed mid-rollout", "origin peak RSS"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("report lacks %q:\n%s", want, out.String())
		}
	}
}

func TestPercentile(t *testing.T) {
	ms := func(v ...int) []time.Duration {
		var out []time.Duration
		for _, x := range v {
			out = append(out, time.Duration(x)*time.Millisecond)
		}
		return out
	}
	for _, c := range []struct {
		in   []time.Duration
		p    float64
		want int
	}{
		{nil, 50, 0}, {ms(5), 99, 5}, {ms(30, 10, 20), 50, 20}, {ms(4, 1, 3, 2), 50, 2},
		{ms(1, 2, 3, 4, 5, 6, 7, 8, 9, 100), 99, 100}, {ms(1, 2, 3, 4, 5, 6, 7, 8, 9, 100), 90, 9}, {ms(7, 3), 0, 3},
	} {
		if got := percentile(c.in, c.p); got != time.Duration(c.want)*time.Millisecond {
			t.Errorf("percentile(%v, %v) = %v, want %dms", c.in, c.p, got, c.want)
		}
	}
}
