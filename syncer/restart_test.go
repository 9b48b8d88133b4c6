package syncer

import (
	"fmt"
	"os"
	"strings"
	"testing"
)

// TestFailedJobStartsAgain: a job whose root is unusable reports the error
// (status, health) and starts again on its own once the root is fixed.
func TestFailedJobStartsAgain(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	a, b := h.pair("")
	a.write("extensions.conf", seedExtensions, 0o644)
	// b's job root is a regular file: the job cannot start
	if err := os.RemoveAll(b.tree); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(b.tree, []byte("not a directory"), 0o644); err != nil {
		t.Fatal(err)
	}
	a.start()
	b.start()
	eventually(t, waitLimit, "b reports the broken job", func() error {
		js, _ := b.jobStatus("conf")
		if js.State != "error" || !strings.Contains(js.LastError, b.tree) {
			return fmt.Errorf("state %q, last error %q", js.State, js.LastError)
		}
		if b.a().Healthy(t.Context()) == nil {
			return fmt.Errorf("b is healthy with a broken job")
		}
		return nil
	})
	if err := os.Remove(b.tree); err != nil {
		t.Fatal(err)
	}
	converged(t, "after the root is fixed", a, b)
	waitGood(t, b, "conf")
}
