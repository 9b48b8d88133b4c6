package directio

import (
	"bufio"
	"io"
	"os"
	"path/filepath"
	"testing"
	"unsafe"

	"golang.org/x/sys/unix"
)

// resident returns how many of the file's pages are in the page cache.
func resident(t *testing.T, path string) int {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		t.Fatal(err)
	}
	m, err := unix.Mmap(int(f.Fd()), 0, int(st.Size()), unix.PROT_READ, unix.MAP_SHARED)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Munmap(m)
	vec := make([]byte, (len(m)+os.Getpagesize()-1)/os.Getpagesize())
	if _, _, e := unix.Syscall(unix.SYS_MINCORE, uintptr(unsafe.Pointer(&m[0])), uintptr(len(m)), uintptr(unsafe.Pointer(&vec[0]))); e != 0 {
		t.Fatal(e)
	}
	n := 0
	for _, v := range vec {
		n += int(v & 1)
	}
	return n
}

// TestBypassesPageCache: a file written by a Writer, and then read by a
// Reader, leaves at most its last partial page in the page cache, where a
// buffered write leaves all of it. It needs a file system that takes
// O_DIRECT (the test's temporary directory: ext4 here).
func TestBypassesPageCache(t *testing.T) {
	dir := t.TempDir()
	data := content(4*BufSize + 100)
	pages := (len(data) + os.Getpagesize() - 1) / os.Getpagesize()

	plain := filepath.Join(dir, "plain")
	f, err := os.Create(plain)
	if err != nil {
		t.Fatal(err)
	}
	bw := bufio.NewWriter(f)
	bw.Write(data)
	if err := bw.Flush(); err != nil {
		t.Fatal(err)
	}
	f.Close()
	if n := resident(t, plain); n < pages/2 {
		t.Fatalf("a buffered write left %d of %d pages cached: the check cannot see the difference", n, pages)
	}

	direct := filepath.Join(dir, "direct")
	f, err = os.Create(direct)
	if err != nil {
		t.Fatal(err)
	}
	if err := setDirect(f, true); err != nil {
		t.Fatalf("%s refuses O_DIRECT (%v): run the test on a disk file system", dir, err)
	}
	f.Close()
	writeFile(t, direct, data, int64(len(data)))
	if n := resident(t, direct); n > 1 {
		t.Fatalf("a Writer left %d of %d pages in the page cache, want at most the last one", n, pages)
	}
	f, err = os.Open(direct)
	if err != nil {
		t.Fatal(err)
	}
	r := NewReader(f, int64(len(data)))
	if _, err := io.Copy(io.Discard, r); err != nil {
		t.Fatal(err)
	}
	r.Close()
	if n := resident(t, direct); n > 1 {
		t.Fatalf("a Reader left %d of %d pages in the page cache, want at most the last one", n, pages)
	}
}
