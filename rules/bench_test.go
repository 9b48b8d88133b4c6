package rules

import (
	"fmt"
	"testing"
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
	paths := make([]string, 0, 100_000)
	for i := range 100_000 {
		paths = append(paths, fmt.Sprintf("site%03d/endpoint%05d.conf", i%100, i))
	}
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
