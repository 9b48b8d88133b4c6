package syncer

import (
	"maps"
	"slices"
	"strconv"
	"testing"
	"time"
)

func TestWithholding(t *testing.T) {
	t.Parallel()
	t0 := time.Unix(1000, 0)
	const patience = 30 * time.Second
	late := t0.Add(-patience - time.Second)
	for _, tc := range []struct {
		name     string
		sends    map[string]relaySend
		answered []string // "target@version"
		want     []string
	}{
		{"nothing sent", nil, nil, nil},
		{"the relay answered, the target behind it did not, in time", map[string]relaySend{"d": {"b", 7, late}}, []string{"b@7"}, []string{"b"}},
		{"still within the patience", map[string]relaySend{"d": {"b", 7, t0.Add(-patience)}}, []string{"b@7"}, nil},
		{"the target answered", map[string]relaySend{"d": {"b", 7, late}}, []string{"b@7", "d@7"}, nil},
		{"the relay did not answer either (slow, or down)", map[string]relaySend{"d": {"b", 7, late}}, nil, nil},
		{"the relay answered another version", map[string]relaySend{"d": {"b", 7, late}}, []string{"b@6"}, nil},
		{"the relay's own send", map[string]relaySend{"b": {"b", 7, late}}, nil, nil},
		{"sent directly", map[string]relaySend{"d": {"", 7, late}}, nil, nil},
		{"one of two sites", map[string]relaySend{"d": {"b", 7, late}, "f": {"e", 7, late}}, []string{"b@7", "e@7", "f@7"}, []string{"b"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			answered := func(name string, v uint64) bool {
				for _, a := range tc.answered {
					if a == name+"@"+strconv.FormatUint(v, 10) {
						return true
					}
				}
				return false
			}
			got := slices.Sorted(maps.Keys(withholding(t0, patience, tc.sends, answered)))
			if !slices.Equal(got, tc.want) {
				t.Errorf("withholding = %v, want %v", got, tc.want)
			}
		})
	}
}
