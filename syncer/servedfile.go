package syncer

import (
	"encoding/binary"
	"fmt"
	"iter"
	"os"

	"pbxsync/internal/scratch"
)

// servedFile is the base of a servedSet moved into a file while the job
// idles (servedSet.spill, with the newest index, see park.go): 4 MB at
// 100,000 contents that are the page cache's, not the agent's. The file
// is unlinked as it is made (nothing outlives the agent) and read with
// pread: a lookup reads the few entries of its start (servedSet.starts
// stays in memory), ~2 µs. Entries are 40 bytes: the hash, then the size
// little-endian.
type servedFile struct {
	f   *os.File
	n   int   // entries
	err error // the first read that failed; the set then serves nothing of its base
}

// servedRec is the size of an entry in the file.
const servedRec = 32 + 8

// spill moves s's base into a new unlinked file in dir. On an error s
// is as it was.
func (s *servedSet) spill(dir string) error {
	if s.file != nil || len(s.base) == 0 {
		return nil
	}
	f, err := scratch.Create(dir, ".served-*")
	if err != nil {
		return fmt.Errorf("move the served set out of memory: %w", err)
	}
	buf := make([]byte, 0, 4096*servedRec)
	var off int64
	for i, e := range s.base {
		buf = append(buf, e.h[:]...)
		buf = binary.LittleEndian.AppendUint64(buf, uint64(e.n))
		if len(buf) == cap(buf) || i == len(s.base)-1 {
			if _, err := f.WriteAt(buf, off); err != nil {
				f.Close()
				return fmt.Errorf("move the served set out of memory: %w", err)
			}
			off += int64(len(buf))
			buf = buf[:0]
		}
	}
	s.file, s.base = &servedFile{f: f, n: len(s.base)}, nil
	return nil
}

// entries appends the entries lo to hi (not included) to buf, none when
// they cannot be read (sf.err says why).
func (sf *servedFile) entries(lo, hi int, buf []servedEntry) []servedEntry {
	if sf.err != nil || lo >= hi {
		return buf
	}
	var small [8 * servedRec]byte
	var b []byte
	if n := (hi - lo) * servedRec; n <= len(small) {
		b = small[:n]
	} else {
		b = make([]byte, n)
	}
	if _, err := sf.f.ReadAt(b, int64(lo)*servedRec); err != nil {
		sf.err = fmt.Errorf("read the served set moved out of memory: %w", err)
		return buf
	}
	for ; len(b) >= servedRec; b = b[servedRec:] {
		var e servedEntry
		copy(e.h[:], b)
		e.n = int64(binary.LittleEndian.Uint64(b[32:]))
		buf = append(buf, e)
	}
	return buf
}

// close closes the file; a nil servedFile is closed.
func (sf *servedFile) close() {
	if sf != nil {
		sf.f.Close()
	}
}

// baseEntries yields the entries of s's base in order, from memory or
// from its file.
func (s *servedSet) baseEntries() iter.Seq[servedEntry] {
	return func(yield func(servedEntry) bool) {
		if s.file == nil {
			for _, e := range s.base {
				if !yield(e) {
					return
				}
			}
			return
		}
		const chunk = 4096
		buf := make([]servedEntry, 0, chunk)
		for lo := 0; lo < s.file.n; lo += chunk {
			buf = s.file.entries(lo, min(lo+chunk, s.file.n), buf[:0])
			for _, e := range buf {
				if !yield(e) {
					return
				}
			}
		}
	}
}

// failed returns why s's file could not be read, nil when it could (or
// s has none).
func (s *servedSet) failed() error {
	if s == nil || s.file == nil {
		return nil
	}
	return s.file.err
}

// release closes s's file, if any: s is replaced.
func (s *servedSet) release() {
	if s != nil {
		s.file.close()
	}
}
