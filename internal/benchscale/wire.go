package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"pbxsync/internal/astgen"
)

// wireEdit is one edit of a dialplan and the bytes it cost.
type wireEdit struct {
	sizeMB  int
	rtt     time.Duration // round trip the wanlinks add
	name    string
	pbxsync uint64 // UDP payload bytes both ways through the wanlinks, edit → the source saw the target's answer
	rsync   int64  // rsync -z --stats: total bytes sent + received
	took    time.Duration
	idleBps float64 // link bytes per second while idle (pings, state), included in pbxsync
}

type editStep struct {
	name    string
	content []byte
	restart bool // restart both agents before this edit
}

// editSteps returns the edits of a dialplan of sizeMB: a one-line change
// (the first edit after the initial sync), 100 lines inserted, one line
// appended, and a one-line change as the first edit after a restart.
func editSteps(sizeMB int) (base []byte, steps []editStep) {
	g := astgen.New(uint64(100 + sizeMB))
	base = dialplan(g, sizeMB*1_000_000)
	c1 := g.ChangeLine(base)
	c2 := g.InsertLines(c1, 100)
	c3 := g.AppendLines(c2, 1)
	c4 := g.ChangeLine(c3)
	return base, []editStep{
		{name: "one line changed (first edit after the initial sync)", content: c1},
		{name: "100 lines inserted", content: c2},
		{name: "one line appended", content: c3},
		{name: "one line changed (first edit after a restart of both agents)", content: c4, restart: true},
	}
}

func benchWire(ctx context.Context, o options, rep *report) error {
	for _, size := range o.dialplansMB {
		base, steps := editSteps(size)
		rs, err := rsyncEdits(ctx, filepath.Join(o.work, "wire", fmt.Sprintf("rsync-%dmb", size)), base, steps)
		if err != nil {
			return err
		}
		for _, rtt := range []time.Duration{0, 40 * time.Millisecond} {
			got, err := pbxsyncEdits(ctx, o, filepath.Join(o.work, "wire", fmt.Sprintf("pbxsync-%dmb-%dms", size, rtt.Milliseconds())), base, steps, rtt)
			for i, e := range got {
				e.sizeMB, e.rtt, e.rsync = size, rtt, rs[i]
				rep.wire = append(rep.wire, e)
			}
			if err != nil {
				return fmt.Errorf("%d MB dialplan, %v apart: %w", size, rtt, err)
			}
		}
	}
	return nil
}

// rsyncEdits pushes base, then each step, with rsync -z to a daemon holding
// the previous version, and returns the bytes of each step.
func rsyncEdits(ctx context.Context, dir string, base []byte, steps []editStep) ([]int64, error) {
	d, err := startRsyncd(ctx, dir)
	if err != nil {
		return nil, err
	}
	defer d.stop()
	local := filepath.Join(dir, "extensions.conf")
	if err := os.WriteFile(local, base, 0o644); err != nil {
		return nil, err
	}
	if _, err := rsync(ctx, "-a", local, d.url("extensions.conf")); err != nil {
		return nil, err
	}
	var out []int64
	for _, s := range steps {
		if err := os.WriteFile(local, s.content, 0o644); err != nil {
			return nil, err
		}
		r, err := rsync(ctx, "-a", "-z", "-I", "--stats", local, d.url("extensions.conf"))
		if err != nil {
			return nil, err
		}
		out = append(out, r.sent+r.received)
	}
	return out, nil
}

// pbxsyncEdits syncs base between two agents that reach each other through
// wanlinks adding rtt, then makes each step and counts the link's bytes.
func pbxsyncEdits(ctx context.Context, o options, dir string, base []byte, steps []editStep, rtt time.Duration) ([]wireEdit, error) {
	p, err := newPair(ctx, o.bin, dir, "dialplan", pairOpts{via: true, delay: rtt / 2})
	if err != nil {
		return nil, err
	}
	defer p.close()
	if err := os.WriteFile(filepath.Join(p.src.tree, "extensions.conf"), base, 0o644); err != nil {
		return nil, err
	}
	if err := p.src.Start(o.bin); err != nil {
		return nil, err
	}
	if err := p.tgt.Start(o.bin); err != nil {
		return nil, err
	}
	if _, err := p.waitSync(ctx, 20*time.Millisecond, o.limit); err != nil {
		return nil, fmt.Errorf("initial sync: %w", err)
	}
	progress("dialplan %s, %v apart: in sync; edits", mb(int64(len(base))), rtt)
	var out []wireEdit
	for _, s := range steps {
		if s.restart {
			p.src.Stop()
			p.tgt.Stop()
			if err := p.src.Start(o.bin); err != nil {
				return out, err
			}
			if err := p.tgt.Start(o.bin); err != nil {
				return out, err
			}
			if _, err := p.waitSync(ctx, 20*time.Millisecond, o.limit); err != nil {
				return out, fmt.Errorf("after the restart: %w", err)
			}
		}
		// What the link carries while nothing changes (pings, state).
		time.Sleep(time.Second)
		i0 := p.links()
		time.Sleep(2 * time.Second)
		idle := float64(p.links().Sub(i0).Total()) / 2
		c0 := p.links()
		took, err := p.edit(ctx, "extensions.conf", s.content, 5*time.Minute)
		if err != nil {
			return out, fmt.Errorf("%s: %w", s.name, err)
		}
		if _, err := p.waitSync(ctx, 10*time.Millisecond, 5*time.Minute); err != nil {
			return out, fmt.Errorf("%s: %w", s.name, err)
		}
		c := p.links().Sub(c0)
		out = append(out, wireEdit{name: s.name, pbxsync: c.Total(), took: took, idleBps: idle})
		progress("  %s: %d B through the links in %v", s.name, c.Total(), took.Round(time.Millisecond))
	}
	return out, nil
}
