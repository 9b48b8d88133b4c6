//go:build unix

package syncer

import (
	"errors"
	"os"
	"syscall"
)

// createExcl creates name, which must not exist yet, for writing, with
// perm less the umask. It opens it with open(2) and wraps the descriptor
// with os.NewFile (one fcntl): os.OpenFile first tries a new regular file
// in the netpoller (two fcntl to set it non-blocking, an epoll_ctl that
// fails, two more to set it back), five of the ten system calls of a small
// staged file.
func createExcl(name string, perm uint32) (*os.File, error) {
	for {
		fd, err := syscall.Open(name, syscall.O_WRONLY|syscall.O_CREAT|syscall.O_EXCL|syscall.O_CLOEXEC, perm)
		if errors.Is(err, syscall.EINTR) {
			continue
		}
		if err != nil {
			return nil, &os.PathError{Op: "open", Path: name, Err: err}
		}
		return os.NewFile(uintptr(fd), name), nil
	}
}
