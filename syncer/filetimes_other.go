//go:build !linux

package syncer

import (
	"os"
	"time"
)

// setFileTimes sets the access and modification times of the open file f
// to mtime (nanoseconds since the epoch), by its name.
func setFileTimes(f *os.File, mtime int64) error {
	t := time.Unix(0, mtime)
	return os.Chtimes(f.Name(), t, t)
}
