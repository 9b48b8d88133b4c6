package store

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/klauspost/compress/zstd"

	"pbxsync/internal/astgen"
)

// configFiles returns pjsip-like configuration files as benchscale writes
// them (1–7 KB before compression, 1.5 KB on average), or the regular
// files below PBXSYNC_BENCH_CONFIGS when set (e.g. Asterisk's sample
// configurations).
func configFiles(tb testing.TB, n int) [][]byte {
	tb.Helper()
	if dir := os.Getenv("PBXSYNC_BENCH_CONFIGS"); dir != "" {
		var out [][]byte
		err := filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
			if err != nil || !d.Type().IsRegular() {
				return err
			}
			b, err := os.ReadFile(p)
			out = append(out, b)
			return err
		})
		if err != nil {
			tb.Fatal(err)
		}
		return out
	}
	g := astgen.New(1000)
	out := make([][]byte, n)
	for i := range out {
		out[i] = g.PJSIP(1 + i%4)
	}
	return out
}

// storedSize puts files into s and returns the bytes it stores for them.
func storedSize(t *testing.T, s *Store, files [][]byte) int64 {
	t.Helper()
	var total int64
	for _, f := range files {
		h := put(t, s, f)
		rc, n, err := s.OpenCompressed(h)
		if err != nil {
			t.Fatal(err)
		}
		_ = rc.Close()
		total += n
	}
	return total
}

// TestDefaultLevelKeepsConfigsSmall: the default level (chosen for its
// CPU per small file, see DefaultLevel) stores configuration files in at
// most 6 % more bytes than SpeedDefault did (measured: 1 % more for the
// generated files, 5 % for Asterisk's sample configurations). A level that
// skipped entropy coding (zstd.WithNoEntropyCompression: half the CPU)
// stores them in 31 % and 37 % more and fails here.
func TestDefaultLevelKeepsConfigsSmall(t *testing.T) {
	files := configFiles(t, 400)
	var content int64
	for _, f := range files {
		content += int64(len(f))
	}
	def := storedSize(t, newTestStore(t), files)
	old := storedSize(t, newTestStore(t, WithCompressionLevel(zstd.SpeedDefault)), files)
	t.Logf("%d bytes of configuration: %d stored at the default level (%.3f), %d at SpeedDefault (%.3f)",
		content, def, float64(def)/float64(content), old, float64(old)/float64(content))
	if float64(def) > 1.06*float64(old) {
		t.Fatalf("the default level stores %d bytes where SpeedDefault stores %d (more than 6 %% more)", def, old)
	}
	if float64(def) > 0.5*float64(content) {
		t.Fatalf("the default level stores %d bytes of %d bytes of configuration", def, content)
	}
}
