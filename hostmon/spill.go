package hostmon

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/maphash"
	"io"
	"io/fs"
	"os"

	"pbxsync/internal/index"
	"pbxsync/internal/scratch"
)

// A spilled States keeps its array of records in a file instead of the
// heap: an idle job's scan state is read a few paths at a time (the paths
// of an event), so holding 100,000 records (~12 MB with their lookup
// table) in memory between events is waste. The file is unlinked as soon
// as it is created, so it never outlives the agent, and it is read with
// pread: its pages live in the page cache, which the kernel reclaims,
// never in the agent's RSS.
//
// Layout: the lookup table (slots: 4-byte ranks+1 of records, a power of
// two of them at least twice the records), then the records in path
// order, spillRec bytes each (the path as an offset and a length), then
// the paths one after another in the same order. A record is found by
// its rank, so the paths below a directory, a range of ranks, are found
// by a binary search (PathsUnder).
type spilledBase struct {
	f     *os.File
	n     int    // records
	slots uint64 // number of slots; they start at offset 0
	recs  int64  // offset of the first record
	paths int64  // offset of the first path
	end   int64  // end of the paths
	seed  maphash.Seed
	err   error // the first read error; the file is then taken as empty
}

// spillRec is the size of a record: hash 32, size, mtime, ctime, dev,
// inode 8 each, mode, vector and path offset 4 each, path length 2, kind
// and deleted 1 each.
const spillRec = 32 + 5*8 + 4 + 4 + 4 + 2 + 1 + 1

// spill writes base to a new unlinked file in dir.
func spill(dir string, base []stateRec, seed maphash.Seed) (*spilledBase, error) {
	f, err := scratch.Create(dir, ".scanstate-*")
	if err != nil {
		return nil, err
	}
	sb, err := writeSpill(f, base, seed)
	if err != nil {
		f.Close()
		return nil, err
	}
	return sb, nil
}

// writeSpill writes base to f (see spilledBase).
func writeSpill(f *os.File, base []stateRec, seed maphash.Seed) (*spilledBase, error) {
	sb := &spilledBase{f: f, n: len(base), seed: seed, slots: 16}
	for sb.slots < 2*uint64(len(base)) {
		sb.slots *= 2
	}
	sb.recs = int64(sb.slots) * 4
	sb.paths = sb.recs + int64(len(base))*spillRec
	slots := make([]uint32, sb.slots)
	mask := sb.slots - 1
	recs := bufio.NewWriterSize(io.NewOffsetWriter(f, sb.recs), 64<<10)
	paths := bufio.NewWriterSize(io.NewOffsetWriter(f, sb.paths), 64<<10)
	var off int64 // of the next path, from sb.paths
	var rec [spillRec]byte
	for i := range base {
		r := &base[i]
		if len(r.path) > 0xffff || off+int64(len(r.path)) > 0xffffffff {
			return nil, fmt.Errorf("scan state too large to spill (path %q)", r.path)
		}
		h := maphash.String(seed, r.path) & mask
		for slots[h] != 0 {
			h = (h + 1) & mask
		}
		slots[h] = uint32(i + 1)
		putSpilled(&rec, r, uint32(off))
		recs.Write(rec[:])
		paths.WriteString(r.path)
		off += int64(len(r.path))
	}
	if err := recs.Flush(); err != nil {
		return nil, err
	}
	if err := paths.Flush(); err != nil {
		return nil, err
	}
	sb.end = sb.paths + off
	table := make([]byte, 4*len(slots))
	for i, v := range slots {
		binary.LittleEndian.PutUint32(table[4*i:], v)
	}
	if _, err := f.WriteAt(table, 0); err != nil {
		return nil, err
	}
	return sb, nil
}

// putSpilled encodes r into rec, its path as off (and its length).
func putSpilled(rec *[spillRec]byte, r *stateRec, off uint32) {
	b := rec[:]
	copy(b, r.hash[:])
	le := binary.LittleEndian
	le.PutUint64(b[32:], uint64(r.size))
	le.PutUint64(b[40:], uint64(r.mtime))
	le.PutUint64(b[48:], uint64(r.ctime))
	le.PutUint64(b[56:], r.dev)
	le.PutUint64(b[64:], r.inode)
	le.PutUint32(b[72:], uint32(r.mode))
	le.PutUint32(b[76:], r.vec)
	le.PutUint32(b[80:], off)
	le.PutUint16(b[84:], uint16(len(r.path)))
	b[86] = byte(r.kind)
	b[87] = 0
	if r.delete {
		b[87] = 1
	}
}

// getSpilled decodes a record into r (path aside) and returns where its
// path is: offset from the first path, and length.
func getSpilled(b []byte, r *stateRec) (int64, int) {
	le := binary.LittleEndian
	copy(r.hash[:], b[:32])
	r.size = int64(le.Uint64(b[32:]))
	r.mtime = int64(le.Uint64(b[40:]))
	r.ctime = int64(le.Uint64(b[48:]))
	r.dev = le.Uint64(b[56:])
	r.inode = le.Uint64(b[64:])
	r.mode = fs.FileMode(le.Uint32(b[72:]))
	r.vec = le.Uint32(b[76:])
	r.kind = index.Kind(b[86])
	r.delete = b[87] == 1
	return int64(le.Uint32(b[80:])), int(le.Uint16(b[84:]))
}

// fail records err as the file's first read error.
func (sb *spilledBase) fail(err error) {
	if sb.err == nil {
		sb.err = fmt.Errorf("read the spilled scan state: %w", err)
	}
}

// read reads len(b) bytes at off, or records the failure.
func (sb *spilledBase) read(b []byte, off int64) bool {
	if sb.err != nil {
		return false
	}
	if _, err := sb.f.ReadAt(b, off); err != nil {
		sb.fail(err)
		return false
	}
	return true
}

// at returns the record of rank i, its path read too.
func (sb *spilledBase) at(i int) (stateRec, bool) {
	var b [spillRec]byte
	if !sb.read(b[:], sb.recs+int64(i)*spillRec) {
		return stateRec{}, false
	}
	var r stateRec
	off, l := getSpilled(b[:], &r)
	path := make([]byte, l)
	if !sb.read(path, sb.paths+off) {
		return stateRec{}, false
	}
	r.path = string(path)
	return r, true
}

// get returns the record of p.
func (sb *spilledBase) get(p string) (stateRec, bool) {
	if sb.err != nil || sb.n == 0 {
		return stateRec{}, false
	}
	mask := sb.slots - 1
	var slot [4]byte
	for h := maphash.String(sb.seed, p) & mask; ; h = (h + 1) & mask {
		if !sb.read(slot[:], int64(h)*4) {
			return stateRec{}, false
		}
		v := binary.LittleEndian.Uint32(slot[:])
		if v == 0 {
			return stateRec{}, false
		}
		var b [spillRec]byte
		if !sb.read(b[:], sb.recs+int64(v-1)*spillRec) {
			return stateRec{}, false
		}
		var r stateRec
		off, l := getSpilled(b[:], &r)
		if l != len(p) {
			continue
		}
		path := make([]byte, l)
		if !sb.read(path, sb.paths+off) {
			return stateRec{}, false
		}
		if string(path) == p {
			r.path = p
			return r, true
		}
	}
}

// search returns the rank of the first record whose path is p or after
// it (n when none is).
func (sb *spilledBase) search(p string) int {
	lo, hi := 0, sb.n
	for lo < hi {
		m := int(uint(lo+hi) >> 1)
		r, ok := sb.at(m)
		if !ok {
			return sb.n
		}
		if r.path < p {
			lo = m + 1
		} else {
			hi = m
		}
	}
	return lo
}

// from yields the records from rank i on, in path order (each path a new
// string).
func (sb *spilledBase) from(i int, yield func(*stateRec) bool) {
	if sb.err != nil || i >= sb.n {
		return
	}
	var first [spillRec]byte
	if !sb.read(first[:], sb.recs+int64(i)*spillRec) {
		return
	}
	var r0 stateRec
	off, _ := getSpilled(first[:], &r0)
	recs := bufio.NewReaderSize(io.NewSectionReader(sb.f, sb.recs+int64(i)*spillRec, int64(sb.n-i)*spillRec), 32<<10)
	paths := bufio.NewReaderSize(io.NewSectionReader(sb.f, sb.paths+off, sb.end-sb.paths-off), 32<<10)
	var b [spillRec]byte
	for range sb.n - i {
		if _, err := io.ReadFull(recs, b[:]); err != nil {
			sb.fail(err)
			return
		}
		var r stateRec
		_, l := getSpilled(b[:], &r)
		path := make([]byte, l)
		if _, err := io.ReadFull(paths, path); err != nil {
			sb.fail(err)
			return
		}
		r.path = string(path)
		if !yield(&r) {
			return
		}
	}
}

// all yields every record in path order (each path a new string).
func (sb *spilledBase) all(yield func(*stateRec) bool) { sb.from(0, yield) }

// close closes the file (which is gone from the file system already).
func (sb *spilledBase) close() {
	sb.f.Close()
}

// errIterating is what Spill returns for a States that cannot spill now.
var errIterating = errors.New("scan state is being iterated")
