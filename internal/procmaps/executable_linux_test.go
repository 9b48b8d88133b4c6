package procmaps

import (
	"os"
	"testing"
)

// TestReleaseExecutable lets go of the test binary's pages: what stays
// resident right after is what the test ran since, far less than before.
func TestReleaseExecutable(t *testing.T) {
	exe, err := os.Readlink("/proc/self/exe")
	if err != nil {
		t.Fatal(err)
	}
	before, err := Resident(exe)
	if err != nil || before < 1<<20 {
		t.Fatalf("resident executable before: %d bytes (%v); want at least 1 MiB", before, err)
	}
	n, err := ReleaseExecutable()
	if err != nil || n < 1<<20 {
		t.Fatalf("released %d bytes of mappings (%v); want at least 1 MiB (%d resident)", n, err, before)
	}
	after, err := Resident(exe)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("executable resident: %d KiB before, %d KiB after releasing %d KiB of mappings", before>>10, after>>10, n>>10)
	if after > before/2 {
		t.Errorf("executable resident after the release: %d bytes of %d before; want at most half", after, before)
	}
}
