package backup

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestUnpackByHand: an archive is a plain .tar.zst for the zstd and tar
// commands (the trailing hash is a skippable frame they pass over), so an
// admin can unpack one without pbxsync.
func TestUnpackByHand(t *testing.T) {
	if _, err := exec.LookPath("zstd"); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("no zstd command (.ci/run installs it)")
		}
		t.Skip("no zstd command (apt-get install zstd)")
	}
	b, _, files := writeTest(t)
	dir := t.TempDir()
	arch := filepath.Join(dir, "b.tar.zst")
	os.WriteFile(arch, b, 0o600)
	out, err := exec.Command("sh", "-c", "zstd -dc "+arch+" | tar -xf - -C "+dir+" && ls -R "+dir).CombinedOutput()
	if err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	got, err := os.ReadFile(filepath.Join(dir, "data", "extensions.conf"))
	if err != nil || string(got) != string(files["extensions.conf"]) || !strings.Contains(string(out), ManifestName) {
		t.Fatalf("unpacked: %v %q\n%s", err, got, out)
	}
}
