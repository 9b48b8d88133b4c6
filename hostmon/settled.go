package hostmon

import (
	"io/fs"
	"time"

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
// write, which is not it.MTime (the time the content was made, at least a
// round trip earlier), so a file whose mtime is still it.MTime holds its
// content. Its state is trusted by later scans (CTime kept) unless it.MTime
// is itself within racyWindow of now: then a write in the same timestamp
// tick could keep every stamp, and the state is recorded untrusted, as a
// scan records a file that changed just before it was read.
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
	if time.Since(time.Unix(0, it.MTime)) < racyWindow {
		st.CTime = 0
	}
	return st, true
}

// Identity returns the device, inode and inode change time (Unix ns) of
// fi, as a scan records them (zero where the platform does not say): a
// file replaced by a rename has another inode, a file written in place
// another change time.
func Identity(fi fs.FileInfo) (dev, ino uint64, ctime int64) { return sysStat(fi) }
