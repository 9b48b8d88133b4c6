//go:build linux

package hostmon

import (
	"io/fs"
	"syscall"

	"golang.org/x/sys/unix"
)

// sysStat returns the device, inode and inode change time (Unix ns) of fi.
func sysStat(fi fs.FileInfo) (dev, ino uint64, ctime int64) {
	switch st := fi.Sys().(type) {
	case *syscall.Stat_t:
		return uint64(st.Dev), uint64(st.Ino), st.Ctim.Nano()
	case *unix.Stat_t: // statInfo's
		return st.Dev, st.Ino, st.Ctim.Nano()
	}
	return 0, 0, 0
}
