package main

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"time"
)

// seedFile is written on the origin before its agents start; the initial
// sync is done when every target holds it.
const seedFile = "extensions.conf"

// waitInitial waits until every target applied a generation holding the
// origin's seed file.
func (f *fleet) waitInitial(ctx context.Context, limit time.Duration) error {
	want, err := os.ReadFile(filepath.Join(f.origin.tree, seedFile))
	if err != nil {
		return err
	}
	before := map[string]uint64{}
	_, err = f.waitApplied(ctx, f.targets, before, seedFile, want, time.Now(), limit)
	return err
}

// waitConnected waits until every agent is connected to every peer it
// pins: the farm has settled (a relay is chosen among connected targets
// and hands on over its own site's connections).
func (f *fleet) waitConnected(ctx context.Context, limit time.Duration) error {
	deadline := time.Now().Add(limit)
	for _, a := range f.all() {
		for {
			st, err := a.Status(ctx)
			down := ""
			if err == nil {
				for _, p := range st.Peers {
					if !p.Connected {
						down = p.Name
					}
				}
			}
			if err == nil && down == "" {
				break
			}
			if time.Now().After(deadline) {
				return fmt.Errorf("%s: not connected to %q within %v (%v)", a.Name, down, limit, err)
			}
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(20 * time.Millisecond):
			}
		}
	}
	return nil
}

// appliedCounts returns how many generations each target applied so far.
func (f *fleet) appliedCounts(ctx context.Context, targets []*agent) (map[string]uint64, error) {
	out := map[string]uint64{}
	for _, t := range targets {
		js, err := t.jobStatus(ctx)
		if err != nil {
			return nil, err
		}
		out[t.Name] = js.Applied
	}
	return out, nil
}

// waitApplied polls targets until each applied more generations than
// before and holds content at rel; it returns each target's
// change→applied time: from t0 to the moment the target marked the
// generation good (its status' last_change: the same clock, one machine).
func (f *fleet) waitApplied(ctx context.Context, targets []*agent, before map[string]uint64, rel string, content []byte, t0 time.Time, limit time.Duration) (map[string]time.Duration, error) {
	deadline := time.Now().Add(limit)
	pending := slices.Clone(targets)
	out := map[string]time.Duration{}
	for len(pending) > 0 {
		var still []*agent
		for _, t := range pending {
			if err := t.Exited(); err != nil {
				return out, err
			}
			js, err := t.jobStatus(ctx)
			if err != nil || js.Applied <= before[t.Name] || js.State != "good" {
				still = append(still, t)
				continue
			}
			got, err := os.ReadFile(filepath.Join(t.tree, rel))
			if err != nil || string(got) != string(content) {
				still = append(still, t) // a generation before the one with the change
				continue
			}
			out[t.Name] = js.LastChange.Sub(t0)
		}
		pending = still
		if len(pending) == 0 {
			break
		}
		if time.Now().After(deadline) {
			var names []string
			for _, t := range pending {
				names = append(names, t.Name)
			}
			return out, fmt.Errorf("%v did not apply %s within %v", names, rel, limit)
		}
		select {
		case <-ctx.Done():
			return out, ctx.Err()
		case <-time.After(5 * time.Millisecond):
		}
	}
	return out, nil
}

// change is one change at the origin and what it cost.
type change struct {
	size    int                      // bytes of the changed file
	origin  uint64                   // bytes the origin sent meanwhile (all its peers)
	wan     uint64                   // bytes that crossed the WAN meanwhile (both ways)
	into    map[string]uint64        // bytes each far target received over the WAN
	latency map[string]time.Duration // change→applied of each target
	took    time.Duration            // until the last target applied
}

// makeChange writes content to rel at the origin and waits until every
// target applied it, counting bytes.
func (f *fleet) makeChange(ctx context.Context, rel string, content []byte, limit time.Duration) (*change, error) {
	before, err := f.appliedCounts(ctx, f.targets)
	if err != nil {
		return nil, err
	}
	o0, err := f.originBytes(ctx)
	if err != nil {
		return nil, err
	}
	w0 := f.wan.Counts()
	into0 := f.into()
	t0 := time.Now()
	if err := os.WriteFile(filepath.Join(f.origin.tree, rel), content, 0o644); err != nil {
		return nil, err
	}
	lat, err := f.waitApplied(ctx, f.targets, before, rel, content, t0, limit)
	if err != nil {
		return nil, err
	}
	c := &change{size: len(content), latency: lat, took: time.Since(t0), into: map[string]uint64{}}
	o1, err := f.originBytes(ctx)
	if err != nil {
		return nil, err
	}
	c.origin = o1 - o0
	c.wan = f.wan.Counts().Sub(w0).Total()
	for name, n := range f.into() {
		c.into[name] = n - into0[name]
	}
	return c, nil
}

// into returns the bytes each far target received over the WAN so far.
func (f *fleet) into() map[string]uint64 {
	out := map[string]uint64{}
	for _, t := range f.far() {
		out[t.Name] = f.wan.Into(t.Name).Up
	}
	return out
}

// idleRates measures the bytes per second the origin sends and the WAN
// carries while nothing changes (keep-alives, state).
func (f *fleet) idleRates(ctx context.Context, d time.Duration) (origin, wan float64, err error) {
	o0, err := f.originBytes(ctx)
	if err != nil {
		return 0, 0, err
	}
	w0 := f.wan.Counts()
	t0 := time.Now()
	select {
	case <-ctx.Done():
		return 0, 0, ctx.Err()
	case <-time.After(d):
	}
	o1, err := f.originBytes(ctx)
	if err != nil {
		return 0, 0, err
	}
	s := time.Since(t0).Seconds()
	return float64(o1-o0) / s, float64(f.wan.Counts().Sub(w0).Total()) / s, nil
}

// randomContent returns n bytes that do not compress (each change is a
// copy of known size on the wire).
func randomContent(seed uint64, n int) []byte {
	r := rand.New(rand.NewPCG(seed, 15))
	b := make([]byte, n)
	for i := 0; i+8 <= n; i += 8 {
		v := r.Uint64()
		for k := range 8 {
			b[i+k] = byte(v >> (8 * k))
		}
	}
	return b
}

// dialplan returns a small extensions.conf whose line n differs from
// the other versions'.
func dialplan(n int) []byte {
	b := []byte("[general]\nstatic=yes\n\n[from-internal]\n")
	for i := range 40 {
		ext := fmt.Sprintf("exten => %d,1,Dial(PJSIP/%d,30)\n", 100+i, 100+i)
		if i == n%40 {
			ext = fmt.Sprintf("exten => %d,1,Dial(PJSIP/%d,%d)\n", 100+i, 100+i, 31+n)
		}
		b = append(b, ext...)
	}
	return b
}

// percentile returns the p-th percentile (nearest rank) of ds.
func percentile(ds []time.Duration, p float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	i := int(float64(len(s))*p/100+0.999999) - 1
	return s[max(0, min(i, len(s)-1))]
}
