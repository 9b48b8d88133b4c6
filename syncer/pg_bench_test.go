package syncer

import (
	"context"
	"fmt"
	"sort"
	"testing"
	"time"

	"pbxsync/internal/pgtest"
)

// BenchmarkPGPush measures, between two agents on two databases, the
// latency from a commit on the source to the row being visible on the
// target (p50/p99 over single-row commits), and the apply rate of
// 10,000-row bulk inserts (rows/s, commit to last row visible).
//
//	go test -run '^$' -bench PGPush -benchtime 200x ./syncer/
func BenchmarkPGPush(b *testing.B) {
	srv := pgtest.Start(b)
	dsnA, dsnB := srv.NewDB(b), srv.NewDB(b)
	ca, cb := pgtest.Connect(b, dsnA), pgtest.Connect(b, dsnB)
	pgExec(b, ca, pgEndpointsDDL)
	pgExec(b, cb, pgEndpointsDDL)
	na, nb := pgPair(b, dsnA, dsnB)
	na.start()
	nb.start()
	pgSame(b, "initial sync", ca, cb)
	visible := func(id string) bool {
		var n int
		cb.QueryRow(context.Background(), "SELECT count(*) FROM ps_endpoints WHERE id = $1", id).Scan(&n)
		return n == 1
	}
	waitFor := func(id string) time.Duration {
		start := time.Now()
		for !visible(id) {
			if time.Since(start) > 30*time.Second {
				b.Fatalf("%s not visible on the target within 30s", id)
			}
			time.Sleep(500 * time.Microsecond)
		}
		return time.Since(start)
	}
	b.ResetTimer()
	lat := make([]time.Duration, 0, b.N)
	for i := 0; i < b.N; i++ {
		id := fmt.Sprintf("lat%d", i)
		pgExec(b, ca, `INSERT INTO ps_endpoints VALUES ($1,'udp','x','x','from-internal','all','ulaw','no')`, id)
		d := waitFor(id)
		if d > 500*time.Millisecond && testing.Verbose() {
			b.Logf("slow: %s %s at %s", id, d, time.Now().Format("15:04:05.000"))
		}
		lat = append(lat, d)
	}
	b.StopTimer()
	sort.Slice(lat, func(i, k int) bool { return lat[i] < lat[k] })
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds())/1000, "p99-ms")

	const bulk = 10000
	var total time.Duration
	rounds := 3
	for r := 0; r < rounds; r++ {
		start := time.Now()
		pgExec(b, ca, `INSERT INTO ps_endpoints SELECT 'bulk'||$1::int||'-'||g, 'udp', 'ep'||g, 'ep'||g, 'from-internal', 'all', 'ulaw', NULL FROM generate_series(1,$2::int) g`, r, bulk)
		waitFor(fmt.Sprintf("bulk%d-%d", r, bulk))
		total += time.Since(start)
	}
	b.ReportMetric(float64(bulk*rounds)/total.Seconds(), "rows/s")
}
