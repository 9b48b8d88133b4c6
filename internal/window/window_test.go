package window

import (
	"strings"
	"testing"
	"time"
	_ "time/tzdata" // the zone of TestNextAcrossDST on any machine
)

func at(hhmm string) time.Time {
	t, err := time.ParseInLocation("2006-01-02 15:04:05", "2026-12-02 "+hhmm, time.UTC)
	if err != nil {
		panic(err)
	}
	return t
}

func TestParse(t *testing.T) {
	for _, c := range []struct {
		in   string
		want Window
		err  string
	}{
		{in: "02:00-04:00", want: Window{2 * 3600, 4 * 3600}},
		{in: " 22:30 - 01:15 ", want: Window{22*3600 + 30*60, 3600 + 15*60}},
		{in: "2:00-4:00", want: Window{2 * 3600, 4 * 3600}},
		{in: "23:00-24:00", want: Window{23 * 3600, 0}},
		{in: "00:00-24:00", err: "same time"},
		{in: "02:00", err: "want HH:MM-HH:MM"},
		{in: "02:00-02:00", err: "same time"},
		{in: "25:00-02:00", err: "not a time of day"},
		{in: "02:60-03:00", err: "not a time of day"},
		{in: "02-03", err: "not HH:MM"},
		{in: "aa:bb-03:00", err: "not a time of day"},
	} {
		w, err := Parse(c.in)
		if c.err != "" {
			if err == nil || !strings.Contains(err.Error(), c.err) {
				t.Errorf("Parse(%q) = %v, %v; want error with %q", c.in, w, err, c.err)
			}
			continue
		}
		if err != nil || w != c.want {
			t.Errorf("Parse(%q) = %v, %v; want %v", c.in, w, err, c.want)
		}
	}
}

func TestOpen(t *testing.T) {
	night, _ := ParseAll([]string{"02:00-04:00"})
	over, _ := ParseAll([]string{"22:00-01:00"})
	two, _ := ParseAll([]string{"02:00-04:00", "12:00-12:30"})
	for _, c := range []struct {
		name string
		ws   Set
		t    string
		want bool
	}{
		{"none is always open", nil, "13:00:00", true},
		{"before", night, "01:59:59", false},
		{"at the start", night, "02:00:00", true},
		{"inside", night, "03:30:00", true},
		{"at the end (exclusive)", night, "04:00:00", false},
		{"over midnight, evening", over, "23:00:00", true},
		{"over midnight, at start", over, "22:00:00", true},
		{"over midnight, after midnight", over, "00:59:59", true},
		{"over midnight, at end", over, "01:00:00", false},
		{"over midnight, day", over, "12:00:00", false},
		{"second of two", two, "12:10:00", true},
		{"between two", two, "05:00:00", false},
	} {
		if got := c.ws.Open(at(c.t)); got != c.want {
			t.Errorf("%s: Open(%s) = %v, want %v", c.name, c.t, got, c.want)
		}
	}
}

func TestNext(t *testing.T) {
	night, _ := ParseAll([]string{"02:00-04:00"})
	two, _ := ParseAll([]string{"12:00-12:30", "02:00-04:00"})
	over, _ := ParseAll([]string{"22:00-01:00"})
	for _, c := range []struct {
		name string
		ws   Set
		t    string
		want string // RFC 3339
		win  string
	}{
		{"later today", night, "01:00:00", "2026-12-02T02:00:00Z", "02:00-04:00"},
		{"tomorrow", night, "05:00:00", "2026-12-03T02:00:00Z", "02:00-04:00"},
		{"inside: the next opening", night, "02:00:00", "2026-12-03T02:00:00Z", "02:00-04:00"},
		{"nearest of two", two, "05:00:00", "2026-12-02T12:00:00Z", "12:00-12:30"},
		{"nearest of two, after both", two, "13:00:00", "2026-12-03T02:00:00Z", "02:00-04:00"},
		{"over midnight", over, "12:00:00", "2026-12-02T22:00:00Z", "22:00-01:00"},
	} {
		got, w, ok := c.ws.Next(at(c.t))
		if !ok || got.Format(time.RFC3339) != c.want || w.String() != c.win {
			t.Errorf("%s: Next(%s) = %s %s %v; want %s %s", c.name, c.t, got.Format(time.RFC3339), w, ok, c.want, c.win)
		}
	}
	if _, _, ok := Set(nil).Next(at("01:00:00")); ok {
		t.Error("Next of no windows is ok")
	}
}

// TestNextAcrossDST: a window at 02:30 on the night clocks go forward
// (Europe/Berlin, 29 March 2026, 02:00 → 03:00) still opens, at the
// normalised wall-clock time, and the day after at 02:30.
func TestNextAcrossDST(t *testing.T) {
	loc, err := time.LoadLocation("Europe/Berlin")
	if err != nil {
		t.Fatal(err)
	}
	ws, _ := ParseAll([]string{"02:30-04:00"})
	from := time.Date(2026, 3, 29, 1, 0, 0, 0, loc)
	got, _, _ := ws.Next(from)
	if !got.After(from) || got.Sub(from) > 3*time.Hour {
		t.Errorf("Next over the DST gap = %s, want within hours after %s", got, from)
	}
	if !ws.Open(time.Date(2026, 3, 29, 3, 30, 0, 0, loc)) {
		t.Error("03:30 on the DST night is not inside 02:30-04:00")
	}
}

func TestWaiting(t *testing.T) {
	w, _ := Parse("02:00-04:00")
	if got := Waiting(w, 3); got != "waiting for window 02:00, 3 generations pending" {
		t.Errorf("Waiting = %q", got)
	}
	if got := Waiting(w, 1); got != "waiting for window 02:00, 1 generation pending" {
		t.Errorf("Waiting = %q", got)
	}
}
