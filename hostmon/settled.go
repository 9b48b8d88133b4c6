package hostmon

import (
	"io/fs"

	"pbxsync/internal/index"
)

// Settled returns the state of the regular file the caller has just put in
// place as it (content it.Hash, mtime it.MTime set by the caller), from fi,
// its stat read after that: what a scan would record after hashing it,
// without reading it. ok is false when fi does not show it (another kind,
// size or mtime: something changed the file meanwhile), and the file must
// be scanned. The version vector is the caller's to carry over.
//
// A write after the caller's stamps the file's mtime with the time of that
// write, which is not it.MTime (the time the content was made), so a file
// whose mtime is still it.MTime holds its content. Its state is trusted by
// later scans (CTime kept) when it.MTime is strictly before the inode's
// change time in fi (stamped by the file system when the caller put the
// file in place): any later write is stamped with a time at or after that
// change time, on the same clock and at the same granularity, so never
// with it.MTime, and the mtime a later scan compares gives it away. An
// item whose mtime is not before its change time (made within the same
// timestamp tick, or ahead of this host's clock) could be written over
// again in that tick with every stamp kept: its state is recorded
// untrusted, as a scan records a file that changed just before it read
// it. Unlike the scan's racy window this needs no time of its own, so
// the file the apply of a fresh edit put in place is not read again.
func Settled(it index.Item, fi fs.FileInfo) (FileState, bool) {
	if !fi.Mode().IsRegular() || fi.Size() != it.Size || fi.ModTime().UnixNano() != it.MTime || it.Hash.IsZero() {
		return FileState{}, false
	}
	dev, ino, ctime := sysStat(fi)
	st := FileState{
		Item: index.Item{
			Path:  it.Path,
			Kind:  index.KindFile,
			Size:  it.Size,
			Mode:  fi.Mode() & index.ModeBits,
			MTime: it.MTime,
			Hash:  it.Hash,
		},
		Dev:   dev,
		Inode: ino,
		CTime: ctime,
	}
	if it.MTime >= ctime {
		st.CTime = 0
	}
	return st, true
}

// Identity returns the device, inode and inode change time (Unix ns) of
// fi, as a scan records them (zero where the platform does not say): a
// file replaced by a rename has another inode, a file written in place
// another change time.
func Identity(fi fs.FileInfo) (dev, ino uint64, ctime int64) { return sysStat(fi) }
