//go:build !linux

package procmaps

// DropPages does nothing off Linux.
func DropPages(addr uintptr, size int64) error { return nil }
