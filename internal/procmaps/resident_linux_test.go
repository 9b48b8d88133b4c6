package procmaps

import (
	"os"
	"path/filepath"
	"syscall"
	"testing"
)

// TestResidentCountsTouchedPages maps a file of 4 MiB, touches 1 MiB of
// it and reads back between 1 MiB and the file's size (the kernel may map
// pages around those touched), then 0 once it is unmapped.
func TestResidentCountsTouchedPages(t *testing.T) {
	name := filepath.Join(t.TempDir(), "procmaps-test.db")
	if err := os.WriteFile(name, make([]byte, 4<<20), 0o600); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(name)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	b, err := syscall.Mmap(int(f.Fd()), 0, 4<<20, syscall.PROT_READ, syscall.MAP_SHARED)
	if err != nil {
		t.Fatal(err)
	}
	sum := 0
	for i := 0; i < 1<<20; i += 4096 {
		sum += int(b[i])
	}
	got, err := Resident("procmaps-test.db")
	if err != nil {
		t.Fatal(err)
	}
	if byPath, err := Resident(name); err != nil || byPath != got {
		t.Errorf("resident by path %d (%v), by base name %d", byPath, err, got)
	}
	if got < 1<<20 || got > 4<<20 || sum != 0 {
		t.Errorf("resident %d bytes after touching 1 MiB of 4; want 1-4 MiB", got)
	}
	if err := syscall.Munmap(b); err != nil {
		t.Fatal(err)
	}
	if got, err := Resident("procmaps-test.db"); err != nil || got != 0 {
		t.Errorf("resident %d bytes (%v) once unmapped; want 0", got, err)
	}
}
