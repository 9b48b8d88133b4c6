package procmaps

import "golang.org/x/sys/unix"

// dropPages removes size bytes of mappings at addr from the process's
// resident set (madvise(2), MADV_DONTNEED). addr is passed to the kernel
// as a number: Go never dereferences it here.
func dropPages(addr, size uint64) error {
	if _, _, e := unix.Syscall(unix.SYS_MADVISE, uintptr(addr), uintptr(size), unix.MADV_DONTNEED); e != 0 {
		return e
	}
	return nil
}
