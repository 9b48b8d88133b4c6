package syncer

import (
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// syncFS makes everything written to the file system holding dir durable
// with syncfs(2) (data and metadata; writeback errors are reported). It
// reports false where the system has no syncfs.
func syncFS(dir string) (bool, error) {
	d, err := os.Open(dir)
	if err != nil {
		return false, err
	}
	defer d.Close()
	if err := unix.Syncfs(int(d.Fd())); err != nil {
		return false, fmt.Errorf("syncfs %s: %w", dir, err)
	}
	return true, nil
}
