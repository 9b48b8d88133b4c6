package index

import "io/fs"

// Kind says what an item is.
type Kind uint8

// The kinds of item.
const (
	KindFile Kind = 1 // a regular file
	KindDir  Kind = 2 // a directory
)

// String returns "file" or "dir".
func (k Kind) String() string {
	switch k {
	case KindFile:
		return "file"
	case KindDir:
		return "dir"
	}
	return "unknown"
}

// Item is one file or directory of a job, relative to the job root.
//
// Its fields are ordered for size (96 bytes, not 112 with the small
// fields between the large ones): a job holds one Item per file in each
// of its indexes.
type Item struct {
	Path    string      // slash-separated, relative to the job root; see ValidatePath
	Size    int64       // content length in bytes (0 for directories)
	MTime   int64       // modification time, Unix nanoseconds
	Hash    Hash        // content hash; zero for directories and deleted items
	Version Vector      // who changed it how often
	Mode    fs.FileMode // ModeBits only: permissions, setuid, setgid, sticky
	Kind    Kind        // file or directory
	Deleted bool        // a tombstone: the item existed and was removed
}

// Equal reports whether a and b are equal in every field, their version
// vectors compared by value (nil and empty alike). Pointers: it runs
// once per item of a large index in the store's and the syncer's diffs.
func (a *Item) Equal(b *Item) bool {
	if a.Path != b.Path || a.Kind != b.Kind || a.Deleted != b.Deleted || a.Mode != b.Mode ||
		a.Size != b.Size || a.MTime != b.MTime || a.Hash != b.Hash || len(a.Version) != len(b.Version) {
		return false
	}
	for i := range a.Version {
		if a.Version[i] != b.Version[i] {
			return false
		}
	}
	return true
}

// SameContent reports whether a and b describe the same content and
// metadata as far as a target is concerned: kind, hash, mode and, for
// files, size. Modification times are carried but do not make items differ
// for directories.
func (a Item) SameContent(b Item) bool {
	if a.Kind != b.Kind || a.Deleted != b.Deleted || a.Mode != b.Mode {
		return false
	}
	if a.Kind == KindFile {
		return a.Hash == b.Hash && a.Size == b.Size && a.MTime == b.MTime
	}
	return true
}
