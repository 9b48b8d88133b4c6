//go:build !unix

package syncer

import "os"

// createExcl creates name, which must not exist yet, for writing, with
// perm less the umask.
func createExcl(name string, perm uint32) (*os.File, error) {
	return os.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_EXCL, os.FileMode(perm))
}
