//go:build !unix

package store

import "os"

// lockFile only opens the lock file where flock is not available: the
// single-writer rule is then up to the operator.
func lockFile(path string) (*os.File, error) {
	return os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
}

func unlockFile(f *os.File) error { return f.Close() }
