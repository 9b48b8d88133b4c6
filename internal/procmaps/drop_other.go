//go:build !linux

package procmaps

// dropPages is never reached off Linux: there is no /proc/self/smaps.
func dropPages(addr, size uint64) error { return nil }
