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
)

// A spilled States keeps its array of records in a file instead of the
// heap: an idle job's scan state is read a few paths at a time (the paths
// of an event), so holding 100,000 records (~12 MB with their lookup
// table) in memory between events is waste. The file is unlinked as soon
// as it is created, so it never outlives the agent, and it is read with
// pread: its pages live in the page cache, which the kernel reclaims,
// never in the agent's RSS.
//
// Layout: the lookup table (slots, 4-byte offsets+1 of records, a power
// of two of them at least twice the records) then the records in path
// order, each spillHeader bytes followed by its path.
type spilledBase struct {
	f     *os.File
	n     int    // records
	slots uint64 // number of slots; they start at offset 0
	recs  int64  // offset of the first record
	end   int64  // end of the records
	seed  maphash.Seed
	err   error // the first read error; the file is then taken as empty
}

// spillHeader is the size of a record before its path: hash 32, size,
// mtime, ctime, dev, inode 8 each, mode and vector 4 each, path length 2,
// kind and deleted 1 each.
const spillHeader = 32 + 5*8 + 4 + 4 + 2 + 1 + 1

// spillReadAhead is how much of a record one read takes: its header and a
// path of up to this much less the header, in one pread.
const spillReadAhead = 256

// spill writes base to a new unlinked file in dir.
func spill(dir string, base []stateRec, seed maphash.Seed) (*spilledBase, error) {
	f, err := os.CreateTemp(dir, ".scanstate-*")
	if err != nil {
		return nil, err
	}
	if err := os.Remove(f.Name()); err != nil {
		f.Close()
		return nil, err
	}
	sb := &spilledBase{f: f, n: len(base), seed: seed, slots: 16}
	for sb.slots < 2*uint64(len(base)) {
		sb.slots *= 2
	}
	sb.recs = int64(sb.slots) * 4
	slots := make([]uint32, sb.slots)
	w := bufio.NewWriterSize(io.NewOffsetWriter(f, sb.recs), 64<<10)
	off := sb.recs
	var hdr [spillHeader]byte
	for i := range base {
		r := &base[i]
		if len(r.path) > 0xffff || off-sb.recs > 0xfffffffe {
			f.Close()
			return nil, fmt.Errorf("scan state too large to spill (path %q)", r.path)
		}
		mask := sb.slots - 1
		h := maphash.String(seed, r.path) & mask
		for slots[h] != 0 {
			h = (h + 1) & mask
		}
		slots[h] = uint32(off-sb.recs) + 1
		putSpilled(&hdr, r)
		w.Write(hdr[:])
		w.WriteString(r.path)
		off += int64(spillHeader + len(r.path))
	}
	if err := w.Flush(); err != nil {
		f.Close()
		return nil, err
	}
	sb.end = off
	table := make([]byte, 4*len(slots))
	for i, v := range slots {
		binary.LittleEndian.PutUint32(table[4*i:], v)
	}
	if _, err := f.WriteAt(table, 0); err != nil {
		f.Close()
		return nil, err
	}
	return sb, nil
}

// putSpilled encodes r's fields but its path into hdr.
func putSpilled(hdr *[spillHeader]byte, r *stateRec) {
	b := hdr[:]
	copy(b, r.hash[:])
	le := binary.LittleEndian
	le.PutUint64(b[32:], uint64(r.size))
	le.PutUint64(b[40:], uint64(r.mtime))
	le.PutUint64(b[48:], uint64(r.ctime))
	le.PutUint64(b[56:], r.dev)
	le.PutUint64(b[64:], r.inode)
	le.PutUint32(b[72:], uint32(r.mode))
	le.PutUint32(b[76:], r.vec)
	le.PutUint16(b[80:], uint16(len(r.path)))
	b[82] = byte(r.kind)
	b[83] = 0
	if r.delete {
		b[83] = 1
	}
}

// getSpilled decodes a record's header into r (path aside) and returns its
// path length.
func getSpilled(b []byte, r *stateRec) int {
	le := binary.LittleEndian
	copy(r.hash[:], b[:32])
	r.size = int64(le.Uint64(b[32:]))
	r.mtime = int64(le.Uint64(b[40:]))
	r.ctime = int64(le.Uint64(b[48:]))
	r.dev = le.Uint64(b[56:])
	r.inode = le.Uint64(b[64:])
	r.mode = fs.FileMode(le.Uint32(b[72:]))
	r.vec = le.Uint32(b[76:])
	r.kind = index.Kind(b[82])
	r.delete = b[83] == 1
	return int(le.Uint16(b[80:]))
}

// fail records err as the file's first read error.
func (sb *spilledBase) fail(err error) {
	if sb.err == nil {
		sb.err = fmt.Errorf("read the spilled scan state: %w", err)
	}
}

// get returns the record of p.
func (sb *spilledBase) get(p string) (stateRec, bool) {
	if sb.err != nil || sb.n == 0 {
		return stateRec{}, false
	}
	mask := sb.slots - 1
	var slot [4]byte
	buf := make([]byte, spillReadAhead)
	for h := maphash.String(sb.seed, p) & mask; ; h = (h + 1) & mask {
		if _, err := sb.f.ReadAt(slot[:], int64(h)*4); err != nil {
			sb.fail(err)
			return stateRec{}, false
		}
		v := binary.LittleEndian.Uint32(slot[:])
		if v == 0 {
			return stateRec{}, false
		}
		at := sb.recs + int64(v-1)
		n, err := sb.f.ReadAt(buf, at)
		if n < spillHeader {
			if err == nil {
				err = io.ErrUnexpectedEOF
			}
			sb.fail(err)
			return stateRec{}, false
		}
		var r stateRec
		l := getSpilled(buf[:spillHeader], &r)
		if l != len(p) {
			continue
		}
		path := buf[spillHeader:n]
		if len(path) < l {
			path = make([]byte, l)
			if _, err := sb.f.ReadAt(path, at+spillHeader); err != nil {
				sb.fail(err)
				return stateRec{}, false
			}
		}
		if string(path[:l]) == p {
			r.path = p
			return r, true
		}
	}
}

// all yields every record in path order (each path a new string).
func (sb *spilledBase) all(yield func(*stateRec) bool) {
	if sb.err != nil {
		return
	}
	rd := bufio.NewReaderSize(io.NewSectionReader(sb.f, sb.recs, sb.end-sb.recs), 64<<10)
	var hdr [spillHeader]byte
	for range sb.n {
		if _, err := io.ReadFull(rd, hdr[:]); err != nil {
			sb.fail(err)
			return
		}
		var r stateRec
		path := make([]byte, getSpilled(hdr[:], &r))
		if _, err := io.ReadFull(rd, path); err != nil {
			sb.fail(err)
			return
		}
		r.path = string(path)
		if !yield(&r) {
			return
		}
	}
}

// close closes the file (which is gone from the file system already).
func (sb *spilledBase) close() {
	sb.f.Close()
}

// errIterating is what Spill returns for a States that cannot spill now.
var errIterating = errors.New("scan state is being iterated")
