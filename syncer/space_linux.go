package syncer

import "golang.org/x/sys/unix"

// statSpace reads what the file system of dir has free (statfs(2)); false
// when it cannot be read.
func statSpace(dir string) (fsSpace, bool) {
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil || st.Bsize <= 0 {
		return fsSpace{}, false
	}
	b := uint64(st.Bsize)
	return fsSpace{Block: b, Free: st.Bavail * b, Total: st.Blocks * b, FreeInodes: st.Ffree, TotalInodes: st.Files}, true
}
