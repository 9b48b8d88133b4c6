//go:build !linux

package store

// dropMapped does nothing where ReleaseMapped is not implemented.
func dropMapped(addr uintptr, size int64) error { return nil }
