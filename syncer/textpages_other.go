//go:build !linux

package syncer

// releaseText does nothing where the executable's mapped pages cannot be
// listed (see the Linux version).
func releaseText() error { return nil }
