package wanlink

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"time"
)

// Host is one node on a WAN: its name, its site and the UDP address it
// listens on.
type Host struct {
	Name, Site, Addr string
}

// WANConfig describes a WAN between sites.
type WANConfig struct {
	Hosts []Host
	// Delay, Loss and Seed are those of every link (Config); each link
	// gets its own seed derived from Seed, so a run is repeatable.
	Delay time.Duration
	Loss  float64
	Seed  uint64
}

// WAN joins sites on loopback: for every host and every other site there
// is one Link that the other site's hosts reach the host through, so every
// datagram between two sites crosses an emulated link (delayed, maybe
// lost, counted) and none within a site does. A host's config names its
// peers at Addr(host, peer).
type WAN struct {
	hosts map[string]Host
	links map[route]*Link
}

// route is the link from a site to one host of another site.
type route struct{ from, to string } // from: a site; to: a host name

// StartWAN starts the links of cfg; they stop when ctx ends or on Close.
func StartWAN(ctx context.Context, cfg WANConfig) (*WAN, error) {
	w := &WAN{hosts: map[string]Host{}, links: map[route]*Link{}}
	var sites []string
	for _, h := range cfg.Hosts {
		if _, dup := w.hosts[h.Name]; dup || h.Name == "" {
			return nil, fmt.Errorf("wanlink: host name %q empty or given twice", h.Name)
		}
		w.hosts[h.Name] = h
		if !slices.Contains(sites, h.Site) {
			sites = append(sites, h.Site)
		}
	}
	sort.Strings(sites)
	names := make([]string, 0, len(w.hosts))
	for n := range w.hosts {
		names = append(names, n)
	}
	sort.Strings(names)
	seed := cfg.Seed
	for _, site := range sites {
		for _, n := range names {
			h := w.hosts[n]
			if h.Site == site {
				continue
			}
			seed++
			l, err := Start(ctx, Config{Upstream: h.Addr, Delay: cfg.Delay, Loss: cfg.Loss, Seed: seed})
			if err != nil {
				w.Close()
				return nil, fmt.Errorf("wanlink: link from site %q to %s: %w", site, n, err)
			}
			w.links[route{site, n}] = l
		}
	}
	return w, nil
}

// Addr is the address host from reaches host to at: to's own address in
// the same site, else the address of the link from from's site to to.
// It is "" for an unknown host.
func (w *WAN) Addr(from, to string) string {
	f, ok1 := w.hosts[from]
	t, ok2 := w.hosts[to]
	if !ok1 || !ok2 {
		return ""
	}
	if f.Site == t.Site {
		return t.Addr
	}
	return w.links[route{f.Site, to}].Addr().String()
}

// Between returns what crossed between sites a and b: Up is a→b, Down
// b→a.
func (w *WAN) Between(a, b string) Counts {
	var c Counts
	for r, l := range w.links {
		switch to := w.hosts[r.to].Site; {
		case r.from == a && to == b:
			c = c.Add(l.Counts())
		case r.from == b && to == a:
			c = c.Add(l.Counts().Reverse())
		}
	}
	return c
}

// Into returns the payload bytes that crossed the WAN to and from one
// host: Up is what it received from other sites, Down what it sent them,
// over the links to it and over its own sessions on the links from its
// site (when it dials out from the address it listens on, as QUIC
// agents do).
func (w *WAN) Into(host string) Counts {
	var c Counts
	h := w.hosts[host]
	for r, l := range w.links {
		switch {
		case r.to == host:
			lc := l.Counts()
			c.Up, c.Down = c.Up+lc.Up, c.Down+lc.Down
		case r.from == h.Site:
			cc := l.ClientCounts(h.Addr)
			c.Up, c.Down = c.Up+cc.Down, c.Down+cc.Up
		}
	}
	return c
}

// Counts returns everything that crossed the WAN; Up and Down are summed
// over the links as each link sees them (Total is what matters).
func (w *WAN) Counts() Counts {
	var c Counts
	for _, l := range w.links {
		c = c.Add(l.Counts())
	}
	return c
}

// Close stops every link and waits for them.
func (w *WAN) Close() error {
	var errs []error
	for _, l := range w.links {
		errs = append(errs, l.Close())
	}
	return errors.Join(errs...)
}
