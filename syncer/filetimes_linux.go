package syncer

import (
	"fmt"
	"os"
	"unsafe"

	"golang.org/x/sys/unix"
)

// setFileTimes sets the access and modification times of the open file f
// to mtime (nanoseconds since the epoch) through its descriptor
// (futimens: no path lookup).
func setFileTimes(f *os.File, mtime int64) error {
	ts := [2]unix.Timespec{unix.NsecToTimespec(mtime), unix.NsecToTimespec(mtime)}
	c, err := f.SyscallConn()
	if err != nil {
		return err
	}
	var errno unix.Errno
	if err := c.Control(func(fd uintptr) {
		// utimensat(fd, NULL, ts, 0) is futimens(fd, ts)
		_, _, errno = unix.Syscall6(unix.SYS_UTIMENSAT, fd, 0, uintptr(unsafe.Pointer(&ts[0])), 0, 0, 0)
	}); err != nil {
		return err
	}
	if errno != 0 {
		return fmt.Errorf("futimens %s: %w", f.Name(), errno)
	}
	return nil
}
