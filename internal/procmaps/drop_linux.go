package procmaps

import "golang.org/x/sys/unix"

// DropPages takes size bytes of mappings at addr out of the process's
// resident set (madvise(2), MADV_DONTNEED): for a shared or read-only file
// mapping the pages stay in the page cache and the next read maps them
// again. addr is passed to the kernel as a number: Go never dereferences
// it here. A zero addr or size drops nothing.
func DropPages(addr uintptr, size int64) error {
	if addr == 0 || size <= 0 {
		return nil
	}
	if _, _, e := unix.Syscall(unix.SYS_MADVISE, addr, uintptr(size), unix.MADV_DONTNEED); e != 0 {
		return e
	}
	return nil
}
