package syncer

import (
	"fmt"
	"testing"
	"time"
)

// BenchmarkMeshChecksFailEverywhere: three members whose check is
// `false`; once they are connected, a writes x.conf, and 10 s later the
// benchmark reports the most generations and conflict records any member
// holds (a farm at rest: one generation and none; in the revert storm of
// a check that fails everywhere, over a thousand of each).
//
//	go test -run '^$' -bench MeshChecksFailEverywhere -benchtime 1x ./syncer/
func BenchmarkMeshChecksFailEverywhere(b *testing.B) {
	for range b.N {
		nodes, _ := meshTrio(b, "check = \"false\"\n", false)
		for _, n := range nodes {
			n.start()
		}
		eventually(b, waitLimit, "the members are connected", func() error {
			for _, n := range nodes {
				for _, o := range nodes {
					if o != n && !n.a().mon.Connected(o.name) {
						return fmt.Errorf("%s does not reach %s", n.name, o.name)
					}
				}
			}
			return nil
		})
		nodes[0].write("x.conf", "one\n", 0o644)
		time.Sleep(10 * time.Second) // the window measured
		gens, conflicts := 0, 0
		for _, cnt := range meshCounts(b, nodes...) {
			gens, conflicts = max(gens, cnt[0]), max(conflicts, cnt[1])
		}
		b.ReportMetric(float64(gens), "generations/member")
		b.ReportMetric(float64(conflicts), "conflicts/member")
		for _, n := range nodes {
			n.stop()
		}
	}
	b.ReportMetric(0, "ns/op")
}
