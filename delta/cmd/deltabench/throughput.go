package main

import (
	"bytes"
	"context"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"time"

	"pbxsync/delta"
	"pbxsync/internal/astgen"
	"pbxsync/internal/index"
)

// timing is the wall and CPU time of one operation.
type timing struct{ wall, cpu time.Duration }

func measure(f func() error) (timing, error) {
	runtime.GC()
	c0, t0 := selfCPU(), time.Now()
	err := f()
	return timing{time.Since(t0), selfCPU() - c0}, err
}

func mbps(n int, d time.Duration) float64 { return float64(n) / 1e6 / d.Seconds() }

// throughput times delta computation on a ~100 MB dialplan, unchanged and
// with 1000 scattered small edits, beside rsync on the same files.
func (b *bench) throughput() error {
	g := astgen.New(7)
	exts := 500000
	if b.quick {
		exts = 50000
	}
	base := g.Dialplan(exts)
	scattered := g.ScatterEdits(base, 1000)
	b.printf("\n## Delta-compute throughput (%s dialplan)\n\nMB/s per core = file size / CPU time of the operation (user+sys; pbxsync runs single-threaded, rsync as three processes, whose CPU is summed). Wall time in parentheses. Encode reads base and target once each and is given both BLAKE3 hashes, as the agent has them from its index; Patch writes to io.Discard but hashes the result.\n\n", size(len(base)))
	b.printf("| target | pbxsync Encode (base-aware) | pbxsync Signature | pbxsync Diff | pbxsync Patch | rsync -z (whole run) | pbxsync bytes | rsync bytes |\n|---|---:|---:|---:|---:|---:|---:|---:|\n")
	bp, tp := filepath.Join(b.dir, "tbase"), filepath.Join(b.dir, "ttarget")
	if err := os.WriteFile(bp, base, 0o644); err != nil {
		return err
	}
	defer os.Remove(bp)
	defer os.Remove(tp)
	for _, tc := range []struct {
		name   string
		target []byte
	}{{"unchanged", base}, {"1000 scattered edits", scattered}} {
		if err := os.WriteFile(tp, tc.target, 0o644); err != nil {
			return err
		}
		bf, closeB, err := open(bp)
		if err != nil {
			return err
		}
		tf, closeT, err := open(tp)
		if err != nil {
			closeB()
			return err
		}
		// The agent knows both hashes from its index; so does this run.
		bf.Hash, tf.Hash = index.Sum(base), index.Sum(tc.target)
		ctx := context.Background()
		var d, sig, d2 bytes.Buffer
		var res delta.Result
		tEnc, err := measure(func() error {
			res, err = delta.Encode(ctx, &d, &bf, tf, &delta.Options{TempDir: b.dir})
			return err
		})
		if err != nil {
			return err
		}
		tSig, err := measure(func() error { _, err := delta.WriteSignature(ctx, &sig, bf, nil); return err })
		if err != nil {
			return err
		}
		tDiff, err := measure(func() error {
			s, err := delta.ReadSignature(&sig, nil)
			if err != nil {
				return err
			}
			_, err = delta.Diff(ctx, &d2, s, tf, &delta.Options{TempDir: b.dir})
			return err
		})
		if err != nil {
			return err
		}
		tPatch, err := measure(func() error {
			_, err := delta.Patch(ctx, io.Discard, &bf, bytes.NewReader(d.Bytes()), nil)
			return err
		})
		closeB()
		closeT()
		if err != nil {
			return err
		}
		// rsync on the same files (fresh destination copy).
		rs, err := b.rsync.run(base, tc.target)
		if err != nil {
			return err
		}
		n := len(tc.target)
		b.printf("| %s | %.0f MB/s (%.2f s) | %.0f MB/s (%.2f s) | %.0f MB/s (%.2f s) | %.0f MB/s (%.2f s) | %.0f MB/s (%.2f s, %.2f s CPU) | %d (%s) | %d |\n", tc.name,
			mbps(n, tEnc.cpu), tEnc.wall.Seconds(), mbps(len(base), tSig.cpu), tSig.wall.Seconds(), mbps(n, tDiff.cpu), tDiff.wall.Seconds(),
			mbps(n, tPatch.cpu), tPatch.wall.Seconds(), mbps(n, rs.cpu), rs.wall.Seconds(), rs.cpu.Seconds(), d.Len()+overhead, res.Kind, rs.total)
	}
	return nil
}
