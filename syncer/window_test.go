package syncer

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"pbxsync/internal/window"
)

func TestWindowVerdict(t *testing.T) {
	t.Parallel()
	night, _ := window.ParseAll([]string{"02:00-04:00"})
	two, _ := window.ParseAll([]string{"22:00-01:00", "12:00-12:30"})
	at := func(hhmm string) time.Time {
		t, _ := time.ParseInLocation("15:04", hhmm, time.UTC)
		return time.Date(2026, 12, 2, t.Hour(), t.Minute(), 0, 0, time.UTC)
	}
	for _, c := range []struct {
		name           string
		ws             window.Set
		now            string
		latest, forced uint64
		pending        int
		send           bool
		waiting        string
	}{
		{"no windows", nil, "10:00", 5, 0, 3, true, ""},
		{"inside", night, "03:00", 5, 0, 3, true, ""},
		{"outside", night, "10:00", 5, 0, 3, false, "waiting for window 02:00, 3 generations pending"},
		{"outside, one", night, "10:00", 5, 0, 1, false, "waiting for window 02:00, 1 generation pending"},
		{"outside, nothing pending", night, "10:00", 5, 0, 0, false, ""},
		{"forced: sync --now", night, "10:00", 5, 5, 2, true, ""},
		{"forced an older one", night, "10:00", 6, 5, 1, false, "waiting for window 02:00, 1 generation pending"},
		{"over midnight, inside", two, "00:30", 5, 0, 1, true, ""},
		{"two: the nearest opening", two, "10:00", 5, 0, 2, false, "waiting for window 12:00, 2 generations pending"},
		{"two: after noon", two, "13:00", 5, 0, 2, false, "waiting for window 22:00, 2 generations pending"},
	} {
		send, waiting := windowVerdict(c.ws, at(c.now), c.latest, c.forced, c.pending)
		if send != c.send || waiting != c.waiting {
			t.Errorf("%s: windowVerdict = %v %q, want %v %q", c.name, send, waiting, c.send, c.waiting)
		}
	}
}

func TestPendingSince(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		latest uint64
		held   []uint64
		base   uint64
		want   int
	}{
		{latest: 7, held: nil, base: 4, want: 3},
		{latest: 7, held: []uint64{6, 3}, base: 5, want: 4},
		{latest: 7, held: []uint64{7}, base: 0, want: 0},
		{latest: 2, held: nil, base: 0, want: 2},
		{latest: 2, held: []uint64{9}, base: 0, want: 0},
	} {
		if got := pendingSince(c.latest, c.held, c.base); got != c.want {
			t.Errorf("pendingSince(%d, %v, %d) = %d, want %d", c.latest, c.held, c.base, got, c.want)
		}
	}
}

// fakeClock is a settable clock for Options.Clock.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *fakeClock) set(hh, mm int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = time.Date(2026, 12, 2, hh, mm, 0, 0, time.Local)
}

// TestSyncWindow: outside the window the source records every change as
// a generation and sends none ("waiting for window 02:00, N generations
// pending"); when the window opens the target gets the newest state as
// one generation, not each one in between; sync --now sends at once, and
// the changes after it wait again. The clock is the test's: nothing
// sleeps until 02:00.
func TestSyncWindow(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	a, b := h.pair("window = \"02:00-04:00\"\n")
	clock := &fakeClock{}
	clock.set(10, 0)
	a.tune = func(o *Options) { o.Clock = clock.now }
	a.write("x.conf", "0\n", 0o644)
	a.start()
	b.start()
	waitGeneration(t, a, 1)
	for i := 1; i <= 3; i++ {
		a.write("x.conf", fmt.Sprintf("%d\n", i), 0o644)
		waitGeneration(t, a, uint64(i+1))
	}
	waitWindowStatus(t, a, "waiting for window 02:00, 4 generations pending")
	if st, _ := b.jobStatus("conf"); st.Generation != 0 {
		t.Fatalf("b applied generation %d outside the window", st.Generation)
	}

	clock.set(2, 30)
	waitContent(t, b, "x.conf", "3\n")
	waitWindowStatus(t, a, "")
	gens, err := b.a().Store().Generations("conf")
	if err != nil || len(gens) != 1 {
		t.Errorf("b's generations: %d (%v); want the newest state as one", len(gens), err)
	}

	clock.set(5, 0)
	waitTargetHolds(t, a, "b", 4)
	a.write("x.conf", "4\n", 0o644)
	waitGeneration(t, a, 5)
	waitWindowStatus(t, a, "waiting for window 02:00, 1 generation pending")
	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	defer cancel()
	if err := a.a().SyncNow(ctx, "conf"); err != nil {
		t.Fatal(err)
	}
	waitContent(t, b, "x.conf", "4\n")
	waitTargetHolds(t, a, "b", 5)
	a.write("x.conf", "5\n", 0o644)
	waitGeneration(t, a, 6)
	waitWindowStatus(t, a, "waiting for window 02:00, 1 generation pending")
	if got := string(b.read("x.conf")); got != "4\n" {
		t.Errorf("b took a change after sync --now outside the window: %q", got)
	}
}

func waitGeneration(tb testing.TB, n *tnode, gen uint64) {
	tb.Helper()
	eventually(tb, waitLimit, fmt.Sprintf("%s at generation %d", n.name, gen), func() error {
		if st, _ := n.jobStatus("conf"); st.Generation < gen {
			return fmt.Errorf("at %d", st.Generation)
		}
		return nil
	})
}

func waitWindowStatus(tb testing.TB, n *tnode, want string) {
	tb.Helper()
	eventually(tb, waitLimit, fmt.Sprintf("%s: status %q", n.name, want), func() error {
		if st, _ := n.jobStatus("conf"); st.Window != want {
			return fmt.Errorf("status says %q", st.Window)
		}
		return nil
	})
}

func waitTargetHolds(tb testing.TB, n *tnode, target string, gen uint64) {
	tb.Helper()
	eventually(tb, waitLimit, fmt.Sprintf("%s knows %s holds %d", n.name, target, gen), func() error {
		st, _ := n.jobStatus("conf")
		for _, ts := range st.Targets {
			if ts.Name == target && ts.Version == gen && ts.State == "good" {
				return nil
			}
		}
		return fmt.Errorf("targets: %+v", st.Targets)
	})
}
