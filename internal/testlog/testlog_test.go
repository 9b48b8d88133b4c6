package testlog

import (
	"fmt"
	"os"
	"strings"
	"testing"
)

// recorder is a testing.TB that keeps what Logf prints.
type recorder struct {
	testing.TB
	out strings.Builder
}

func (r *recorder) Logf(format string, args ...any) { fmt.Fprintf(&r.out, format, args...) }
func (r *recorder) Helper()                         {}

func TestDumpPrintsWarningsAndTailAndKeepsTheWholeLog(t *testing.T) {
	t.Setenv(ArtifactsEnv, t.TempDir())
	var log strings.Builder
	for i := range 1000 {
		level := "INFO"
		if i%100 == 7 {
			level = "WARN"
		}
		fmt.Fprintf(&log, "time=x level=%s msg=\"line %d\"\n", level, i)
	}
	r := &recorder{TB: t}
	Dump(r, "pbx1", log.String())
	out := r.out.String()
	for _, want := range []string{`msg="line 7"`, `msg="line 907"`, `msg="line 999"`, `msg="line 970"`} {
		if !strings.Contains(out, want) {
			t.Errorf("the dump lacks %s:\n%s", want, out)
		}
	}
	for _, not := range []string{`msg="line 500"`, `msg="line 969"`} {
		if strings.Contains(out, not) {
			t.Errorf("the dump prints %s, which is neither a warning nor in the tail:\n%s", not, out)
		}
	}
	file := strings.TrimSpace(strings.SplitN(strings.TrimPrefix(out, "log of pbx1: "), "\n", 2)[0])
	whole, err := os.ReadFile(file)
	if err != nil || string(whole) != log.String() {
		t.Fatalf("the whole log is not in %q: %v", file, err)
	}
}
