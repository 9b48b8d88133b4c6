package index

import (
	"io/fs"
	"maps"
	"sort"
)

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

// Index is the set of live items of a job on one host, keyed by path.
type Index map[string]Item

// Clone returns a copy of x that shares no map with it. The items' version
// vectors are shared: a Vector is never changed in place (its methods
// return new ones; see Vectors), so a copy of the map's tables is enough.
// That copy costs a memory copy of them (~2 ms at 100,000 items) where
// inserting every item again, each with a vector of its own, took ~50 ms
// and 100,000 allocations: a target copies the newest index to admit its
// first incremental announcement (takeSpare), on the path of an edit.
func (x Index) Clone() Index {
	if x == nil {
		return Index{}
	}
	return maps.Clone(x)
}

// Sorted returns the items of x ordered by path.
func (x Index) Sorted() []Item {
	out := make([]Item, 0, len(x))
	for _, it := range x {
		out = append(out, it)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Path < out[j].Path })
	return out
}

// Digest returns the digest of x (see SetDigest): the sum of the hashes of
// its items (path, kind, mode, size, mtime, content hash). Two hosts with
// equal digests hold the same tree. It costs one pass over x; code that
// changes an index a few items at a time keeps a SetDigest instead.
func (x Index) Digest() Hash { return DigestOf(x).Hash() }

// ByHash returns an item of x whose content hash is h (any one, when
// several files share the content).
func (x Index) ByHash(h Hash) (Item, bool) {
	for _, it := range x {
		if it.Kind == KindFile && it.Hash == h {
			return it, true
		}
	}
	return Item{}, false
}
