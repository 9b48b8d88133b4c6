package store

import "golang.org/x/sys/unix"

// dropMapped removes size bytes of a shared, read-only file mapping at
// addr from the process's resident set (see ReleaseMapped). addr is
// passed to the kernel as a number: Go never dereferences it here.
func dropMapped(addr uintptr, size int64) error {
	if addr == 0 || size <= 0 {
		return nil
	}
	if _, _, e := unix.Syscall(unix.SYS_MADVISE, addr, uintptr(size), unix.MADV_DONTNEED); e != 0 {
		return e
	}
	return nil
}
