package syncer

import (
	"fmt"
	"maps"
	"slices"
	"testing"
)

func TestMergeProblems(t *testing.T) {
	tests := []struct {
		name         string
		known, found map[string]string
		scope        []string
		want         map[string]string
		fresh        []string
		changed      bool
	}{
		{"nothing", nil, nil, nil, map[string]string{}, nil, false},
		{"a full scan replaces", map[string]string{"a": "x", "b": "y"}, map[string]string{"b": "y", "c": "z"}, nil,
			map[string]string{"b": "y", "c": "z"}, []string{"c"}, true},
		{"a full scan finding the same", map[string]string{"a": "x"}, map[string]string{"a": "x"}, nil,
			map[string]string{"a": "x"}, nil, false},
		{"a scoped scan keeps what is outside its scope", map[string]string{"d/a": "x", "e/b": "y"}, nil, []string{"d/"},
			map[string]string{"e/b": "y"}, nil, true},
		{"a scoped scan adds", map[string]string{"e/b": "y"}, map[string]string{"d/a": "x"}, []string{"d"},
			map[string]string{"e/b": "y", "d/a": "x"}, []string{"d/a"}, true},
		{"a scoped scan with nothing known", nil, map[string]string{"d/a": "x"}, []string{"d", "e"},
			map[string]string{"d/a": "x"}, []string{"d/a"}, true},
		{"a scoped scan of a clean job", nil, nil, []string{"d", "e"}, map[string]string{}, nil, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, fresh, changed := mergeProblems(tc.known, tc.found, tc.scope)
			if !maps.Equal(got, tc.want) || !slices.Equal(fresh, tc.fresh) || changed != tc.changed {
				t.Errorf("mergeProblems = %v, %v, %v; want %v, %v, %v", got, fresh, changed, tc.want, tc.fresh, tc.changed)
			}
		})
	}
}

// TestMergeProblemsOfALargeScopeAllocatesNothingPerPath: the rescan after
// a 100,000-file apply passes as many paths in scope, and a job mostly
// knows no problem; a set of the scope (3.6 MB) was built anyway.
func TestMergeProblemsOfALargeScopeAllocatesNothingPerPath(t *testing.T) {
	scope := make([]string, 100_000)
	for i := range scope {
		scope[i] = fmt.Sprintf("site%03d/endpoint%05d.conf", i/1000, i)
	}
	allocs := testing.AllocsPerRun(3, func() { mergeProblems(nil, nil, scope) })
	if allocs > 2 {
		t.Errorf("mergeProblems(nil, nil, %d paths) made %.0f allocations; want at most 2", len(scope), allocs)
	}
}
