package backup

import (
	"testing"
	"time"
)

func TestNames(t *testing.T) {
	at := time.Date(2026, 12, 2, 2, 30, 0, 0, time.UTC)
	n := Name("conf", 42, at)
	if n != "conf-20261202T023000Z-g42.tar.zst" {
		t.Fatalf("name %q", n)
	}
	if s, ok := ParseName("conf", n); !ok || !s.Time.Equal(at) || s.Generation != 42 {
		t.Fatalf("parse %q: %+v %v", n, s, ok)
	}
	for _, bad := range []string{
		"conf-x-20261202T023000Z-g42.tar.zst", // job conf-x
		"conf-20261202T023000Z-g42.tar.zst.tmp-123",
		".conf-20261202T023000Z-g42.tar.zst.tmp-1",
		"conf-20261202T023000Z-g042.tar.zst",
		"conf-2026-12-02-g42.tar.zst",
		"conf-20261202T023000Z.tar.zst",
		"mine.tar.zst",
	} {
		if _, ok := ParseName("conf", bad); ok {
			t.Errorf("%q parsed as conf's", bad)
		}
	}
}

func TestPlan(t *testing.T) {
	t0 := time.Date(2026, 12, 1, 2, 0, 0, 0, time.UTC)
	names := func(hours ...int) []string {
		var out []string
		for i, h := range hours {
			out = append(out, Name("conf", uint64(i+1), t0.Add(time.Duration(h)*time.Hour)))
		}
		return append(out, "other-20261201T020000Z-g1.tar.zst", "notes.txt")
	}
	day := 24 * time.Hour
	for _, tc := range []struct {
		name   string
		have   []string
		now    time.Time
		keep   int
		due    bool
		remove int // how many, oldest first
	}{
		{"nothing yet", nil, t0, 7, true, 0},
		{"newest is fresh", names(0), t0.Add(23 * time.Hour), 7, false, 0},
		{"newest is a day old", names(0), t0.Add(day), 7, true, 0},
		{"keep 2 with 2: the oldest goes for the new one", names(0, 24), t0.Add(48 * time.Hour), 2, true, 1},
		{"keep 2 with 4, not due: two go", names(0, 1, 2, 3), t0.Add(4 * time.Hour), 2, false, 2},
		{"keep 1: only the new one stays", names(0, 24), t0.Add(48 * time.Hour), 1, true, 2},
		{"clock set back: due", names(48), t0, 7, true, 0},
	} {
		due, remove := Plan("conf", tc.have, day, tc.keep, tc.now)
		if due != tc.due || len(remove) != tc.remove {
			t.Errorf("%s: due %v remove %v; want %v, %d", tc.name, due, remove, tc.due, tc.remove)
			continue
		}
		for i, r := range remove {
			if r != tc.have[i] {
				t.Errorf("%s: removes %s before %s", tc.name, r, tc.have[i])
			}
		}
	}
}
