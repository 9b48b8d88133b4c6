package main

import (
	"fmt"
	"os"
	"time"

	"golang.org/x/sys/unix"
)

// flushFS writes back everything dirty on the file system holding path
// (syncfs) and returns how long that took.
//
// Why: rsync -a leaves what it wrote in the page cache; the kernel writes
// it back later, and until then any fsync or syncfs on the same file
// system pays for it. pbxsync makes its apply durable (a syncfs of the
// staging directory's file system, then fsyncs), so without a flush
// between the two, pbxsync's time included writing back rsync's copy. The
// flush right after rsync is also its durable time: rsync -a plus this is
// what it takes to have the tree on disk, as pbxsync's apply does.
func flushFS(path string) (time.Duration, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, fmt.Errorf("flush the file system of %s: %w", path, err)
	}
	defer f.Close()
	t0 := time.Now()
	if err := unix.Syncfs(int(f.Fd())); err != nil {
		return 0, fmt.Errorf("syncfs %s: %w", path, err)
	}
	return time.Since(t0), nil
}
