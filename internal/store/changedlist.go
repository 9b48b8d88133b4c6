package store

import (
	"encoding/binary"
	"fmt"

	bolt "go.etcd.io/bbolt"

	"pbxsync/internal/index"
)

// changedInlineMax is the most changed paths a generation's meta record
// holds itself. A longer list (a first generation: every path of the
// tree) goes out of line, one key per path in jobs/<job>/changed/<n>, so
// that the gens bucket keeps small values: bbolt rewrites a whole leaf
// when any key in it changes, and a 100,000-path list inline made the
// first few one-file generations after an initial sync rewrite (and
// fsync) its 2.8 MB again with every record and state change.
const changedInlineMax = 128

// bktChanged holds the out-of-line changed lists of a job's generations.
var bktChanged = []byte("changed")

// putChanged writes the changed paths of generation n of jb out of line
// when there are more than changedInlineMax of them, and returns how many
// it wrote (0: they stay inline). A list written earlier for n is
// replaced.
func putChanged(jb *bolt.Bucket, n uint64, paths []string) (int, error) {
	if len(paths) <= changedInlineMax {
		return 0, deleteChanged(jb, n)
	}
	return len(paths), putChangedPart(jb, n, paths, 0, len(paths))
}

// putChangedPart writes paths[from:to] of the out-of-line changed list of
// generation n, one transaction's part of a list too long to write in one
// (a chunked record's, see writeChunks: bbolt holds every node, key and
// sealed value of a transaction until its commit, ~21 MiB for a first
// generation of 100,000 paths). The first part replaces a list left for
// n; a later one needs the parts before it.
func putChangedPart(jb *bolt.Bucket, n uint64, paths []string, from, to int) error {
	var b *bolt.Bucket
	if from == 0 {
		if err := deleteChanged(jb, n); err != nil {
			return err
		}
		root, err := jb.CreateBucketIfNotExists(bktChanged)
		if err != nil {
			return err
		}
		if b, err = root.CreateBucket(u64key(n)); err != nil {
			return err
		}
	} else if root := jb.Bucket(bktChanged); root != nil {
		b = root.Bucket(u64key(n))
	}
	if b == nil {
		return fmt.Errorf("%w: generation %d: the changed paths before %d are gone", ErrCorrupt, n, from)
	}
	b.FillPercent = fillPercent // written in key order
	var k [4]byte
	for i := from; i < to; i++ {
		binary.BigEndian.PutUint32(k[:], uint32(i))
		if err := b.Put(k[:], seal(changedSealKey(n, k[:]), []byte(paths[i]))); err != nil {
			return err
		}
	}
	return nil
}

// changedSealKey is what the checksum of a path in the list of
// generation n covers beside the path: n and its place in the list, so
// that a value moved within or between lists reads as damaged.
func changedSealKey(n uint64, k []byte) []byte {
	return append(u64key(n), k...)
}

// readChanged reads the out-of-line changed list of generation n of jb,
// which its meta record says holds want paths. Every error wraps
// ErrCorrupt.
func readChanged(jb *bolt.Bucket, n uint64, want int) ([]string, error) {
	var b *bolt.Bucket
	if root := jb.Bucket(bktChanged); root != nil {
		b = root.Bucket(u64key(n))
	}
	if b == nil {
		return nil, fmt.Errorf("%w: generation %d: its list of %d changed paths is missing", ErrCorrupt, n, want)
	}
	out := make([]string, 0, want)
	err := b.ForEach(func(k, v []byte) error {
		if len(k) != 4 || int(binary.BigEndian.Uint32(k)) != len(out) || len(out) == want {
			return fmt.Errorf("%w: generation %d: changed paths: bad key %x", ErrCorrupt, n, k)
		}
		b, why := unsealed(changedSealKey(n, k), v)
		if why != "" {
			return fmt.Errorf("%w: changed path %d of generation %d: %s", ErrCorrupt, len(out), n, why)
		}
		p := string(b)
		if err := index.ValidatePath(p); err != nil {
			return fmt.Errorf("%w: generation %d: changed paths: %v", ErrCorrupt, n, err)
		}
		out = append(out, p)
		return nil
	})
	if err != nil {
		return nil, err
	}
	if len(out) != want {
		return nil, fmt.Errorf("%w: generation %d: %d changed paths, its record says %d", ErrCorrupt, n, len(out), want)
	}
	return out, nil
}

// deleteChanged removes the out-of-line changed list of generation n of
// jb, if it has one.
func deleteChanged(jb *bolt.Bucket, n uint64) error {
	root := jb.Bucket(bktChanged)
	if root == nil || root.Bucket(u64key(n)) == nil {
		return nil
	}
	return root.DeleteBucket(u64key(n))
}
