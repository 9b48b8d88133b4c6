package store

import (
	"encoding/hex"
	"io"
	"os"
	"path/filepath"

	"pbxsync/internal/index"
)

// listBlobDirMin: a pass that looks up at least this many hashes of one
// blob directory (blobs/ab/) lists the directory once instead of a stat
// per hash. A target's check of 100,000 fetched small blobs made 100,000
// stats that all failed (small blobs live in packs), ~10 µs each; one of
// a one-file change still makes one stat.
const listBlobDirMin = 16

// blobFiles answers whether blob files exist for the hashes of one pass,
// asked in hash order (see fileExists for one): a blob directory holding
// many of the pass's hashes is read once. It is not safe for concurrent
// use; what it read of a directory stays as read for the pass, as a stat
// done earlier in the pass would.
type blobFiles struct {
	s      *Store
	counts [256]int // the pass's hashes per blob directory

	dir    int                 // the directory listed (-1: none)
	names  map[string]struct{} // its regular files (or links to one), by name
	listed bool                // dir could be read (else: a stat per hash)

	lists, stats int // directories read and stats done (tests)
}

// newBlobFiles returns the blobFiles of a pass over sorted.
func (s *Store) newBlobFiles(sorted []index.Hash) *blobFiles {
	b := &blobFiles{s: s, dir: -1}
	for _, h := range sorted {
		b.counts[h[0]]++
	}
	return b
}

// exists reports whether blob h is a file in place (fileExists).
func (b *blobFiles) exists(h index.Hash) bool {
	d := int(h[0])
	if b.counts[d] < listBlobDirMin {
		b.stats++
		return fileExists(b.s.BlobPath(h))
	}
	if d != b.dir {
		b.list(d)
	}
	if !b.listed {
		b.stats++
		return fileExists(b.s.BlobPath(h))
	}
	_, ok := b.names[hex.EncodeToString(h[:])]
	return ok
}

// list reads blob directory d.
func (b *blobFiles) list(d int) {
	b.dir, b.listed, b.names = d, false, nil
	b.lists++
	path := filepath.Join(b.s.blobsDir(), hex.EncodeToString([]byte{byte(d)}))
	f, err := os.Open(path)
	if os.IsNotExist(err) {
		b.listed = true // no blob of this directory is a file
		return
	}
	if err != nil {
		return
	}
	defer f.Close()
	names := map[string]struct{}{}
	for {
		ents, err := f.ReadDir(1024)
		for _, e := range ents {
			switch t := e.Type(); {
			case t.IsRegular():
				names[e.Name()] = struct{}{}
			case t&os.ModeSymlink != 0:
				// fileExists follows a link
				if fileExists(filepath.Join(path, e.Name())) {
					names[e.Name()] = struct{}{}
				}
			}
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			return
		}
	}
	b.names, b.listed = names, true
}
