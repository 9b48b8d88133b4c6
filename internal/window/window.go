package window

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// day is the length of a day in seconds of wall-clock time.
const day = 24 * 3600

// Window is one daily interval [Start, End) of wall-clock time, in seconds
// after midnight. End < Start is a window over midnight ("22:00-02:00").
type Window struct {
	Start, End int
}

// Parse reads "HH:MM-HH:MM" (24-hour clock, local time). Start and end
// must differ; an end before the start crosses midnight.
func Parse(s string) (Window, error) {
	from, to, ok := strings.Cut(strings.TrimSpace(s), "-")
	if !ok {
		return Window{}, fmt.Errorf("window %q: want HH:MM-HH:MM, e.g. \"02:00-04:00\"", s)
	}
	start, err := clock(from)
	if err != nil {
		return Window{}, fmt.Errorf("window %q: start: %w", s, err)
	}
	end, err := clock(to)
	if err != nil {
		return Window{}, fmt.Errorf("window %q: end: %w", s, err)
	}
	if start == end {
		return Window{}, fmt.Errorf("window %q: start and end are the same time; a window must not be empty", s)
	}
	return Window{Start: start, End: end}, nil
}

// clock reads "HH:MM" into seconds after midnight; "24:00" is midnight at
// the end of the day, allowed as an end only in the sense that it equals 0.
func clock(s string) (int, error) {
	s = strings.TrimSpace(s)
	hh, mm, ok := strings.Cut(s, ":")
	if !ok || len(hh) == 0 || len(hh) > 2 || len(mm) != 2 {
		return 0, fmt.Errorf("%q is not HH:MM", s)
	}
	h, err1 := strconv.Atoi(hh)
	m, err2 := strconv.Atoi(mm)
	if err1 != nil || err2 != nil || h < 0 || m < 0 || m > 59 || h > 24 || (h == 24 && m != 0) {
		return 0, fmt.Errorf("%q is not a time of day (00:00 to 23:59, or 24:00)", s)
	}
	return (h*3600 + m*60) % day, nil
}

// String gives the window back as "HH:MM-HH:MM".
func (w Window) String() string { return hhmm(w.Start) + "-" + hhmm(w.End) }

func hhmm(sec int) string { return fmt.Sprintf("%02d:%02d", sec/3600, sec%3600/60) }

// StartText is the window's opening time as "HH:MM".
func (w Window) StartText() string { return hhmm(w.Start) }

// secondOfDay is t's wall-clock time in its own location, in seconds
// after midnight.
func secondOfDay(t time.Time) int {
	h, m, s := t.Clock()
	return h*3600 + m*60 + s
}

// Contains reports whether the wall-clock time of t (in t's location) is
// inside w.
func (w Window) Contains(t time.Time) bool {
	s := secondOfDay(t)
	if w.Start < w.End {
		return s >= w.Start && s < w.End
	}
	return s >= w.Start || s < w.End
}

// nextStart is the first time ≥ t at which w opens.
func (w Window) nextStart(t time.Time) time.Time {
	y, mo, d := t.Date()
	at := time.Date(y, mo, d, w.Start/3600, w.Start%3600/60, 0, 0, t.Location())
	if at.Before(t) {
		at = time.Date(y, mo, d+1, w.Start/3600, w.Start%3600/60, 0, 0, t.Location())
	}
	return at
}

// Set is the windows of one job. The empty Set is always open: a job
// without windows sends at once.
type Set []Window

// ParseAll parses every window of a job.
func ParseAll(list []string) (Set, error) {
	out := make(Set, 0, len(list))
	for _, s := range list {
		w, err := Parse(s)
		if err != nil {
			return nil, err
		}
		out = append(out, w)
	}
	return out, nil
}

// Open reports whether t falls in one of the windows (always, for none).
func (ws Set) Open(t time.Time) bool {
	if len(ws) == 0 {
		return true
	}
	for _, w := range ws {
		if w.Contains(t) {
			return true
		}
	}
	return false
}

// Next returns when the next window opens after t, and which one; ok is
// false for the empty Set. When t is inside a window, the answer is still
// the next opening (of any window) after t.
func (ws Set) Next(t time.Time) (at time.Time, w Window, ok bool) {
	for _, x := range ws {
		n := x.nextStart(t)
		if !n.After(t) {
			n = x.nextStart(t.Add(time.Second))
		}
		if !ok || n.Before(at) {
			at, w, ok = n, x, true
		}
	}
	return at, w, ok
}

// Waiting is the status line of a job whose changes wait for a window:
// "waiting for window 02:00, 3 generations pending".
func Waiting(w Window, pending int) string {
	unit := "generations"
	if pending == 1 {
		unit = "generation"
	}
	return fmt.Sprintf("waiting for window %s, %d %s pending", w.StartText(), pending, unit)
}
