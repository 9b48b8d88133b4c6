package scratch

import (
	"os"
	"testing"
)

// TestCreateIsUnlinked: the file reads back what is written to it and
// leaves no name in its directory; a directory that is not there is an
// error naming it.
func TestCreateIsUnlinked(t *testing.T) {
	dir := t.TempDir()
	f, err := Create(dir, ".x-*")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteAt([]byte("held"), 10); err != nil {
		t.Fatal(err)
	}
	b := make([]byte, 4)
	if _, err := f.ReadAt(b, 10); err != nil || string(b) != "held" {
		t.Fatalf("read back %q, %v", b, err)
	}
	if left, _ := os.ReadDir(dir); len(left) != 0 {
		t.Fatalf("%d names left in the directory", len(left))
	}
	if _, err := Create(dir+"/gone", ".x-*"); err == nil {
		t.Fatal("made a file in a directory that is not there")
	}
}
