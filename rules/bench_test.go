package rules

import (
	"fmt"
	"testing"

	"pbxsync/internal/config"
)

// BenchmarkPlanInitialSync: the plan of an initial sync's 100k changed
// paths, none of which a builtin names (endpoint files in 100 directories),
// with the built-in rules on.
//
//	go test -run '^$' -bench PlanInitialSync ./rules/
func BenchmarkPlanInitialSync(b *testing.B) {
	r, err := Compile(nil, true)
	if err != nil {
		b.Fatal(err)
	}
	paths := endpointPaths(100_000)
	b.ReportAllocs()
	for b.Loop() {
		p, err := r.Plan(paths)
		if err != nil {
			b.Fatal(err)
		}
		if len(p.Ignored) != len(paths) {
			b.Fatalf("%d paths ignored, want %d", len(p.Ignored), len(paths))
		}
	}
}

// BenchmarkPlanOneRuleMatchesAll: the plan of 100k changed paths that one
// user rule matches (a shell action and a check for every .conf): one
// action and one check, each listing every path.
//
//	go test -run '^$' -bench PlanOneRuleMatchesAll ./rules/
func BenchmarkPlanOneRuleMatchesAll(b *testing.B) {
	r, err := Compile([]config.Rule{{Match: []string{"*.conf"}, Action: "shell true", Check: "true"}}, true)
	if err != nil {
		b.Fatal(err)
	}
	paths := endpointPaths(100_000)
	b.ReportAllocs()
	for b.Loop() {
		p, err := r.Plan(paths)
		if err != nil {
			b.Fatal(err)
		}
		if len(p.Actions) != 1 || len(p.Actions[0].Paths) != len(paths) || len(p.Checks) != 1 || len(p.Checks[0].Paths) != len(paths) {
			b.Fatalf("%d actions and %d checks, want one of each listing the %d paths", len(p.Actions), len(p.Checks), len(paths))
		}
	}
}

// endpointPaths returns n changed paths as an initial sync of endpoint
// files in 100 directories has them.
func endpointPaths(n int) []string {
	paths := make([]string, 0, n)
	for i := range n {
		paths = append(paths, fmt.Sprintf("site%03d/endpoint%05d.conf", i%100, i))
	}
	return paths
}
