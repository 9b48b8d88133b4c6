package core

import "testing"

func TestChecksRetryAfter(t *testing.T) {
	for _, c := range []struct {
		first int64
		tries int
		want  int64
	}{
		{0, 1, 5e9},
		{0, 2, 10e9},
		{0, 3, 20e9},
		{0, 7, 300e9}, // 320 s capped
		{0, 1000, 300e9},
		{1e6, 1, 1e6},
		{1e6, 4, 8e6},
		{400e9, 1, 400e9}, // a first wait above the cap stays
		{400e9, 5, 400e9},
	} {
		if got := ChecksRetryAfter(c.first, c.tries); got != c.want {
			t.Errorf("ChecksRetryAfter(%d, %d) = %d, want %d", c.first, c.tries, got, c.want)
		}
	}
}
