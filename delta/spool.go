package delta

import (
	"errors"
	"fmt"
	"io"
	"os"
)

// errOverBudget stops a candidate encoding once it is no smaller than the
// best one so far.
var errOverBudget = errors.New("delta: candidate no smaller than the best so far")

// spool holds one candidate payload: in memory up to memMax bytes, then in
// an unlinked temporary file. Writes past limit (when limit ≥ 0) fail with
// errOverBudget, which cuts a losing candidate short.
type spool struct {
	limit  int64
	memMax int64
	dir    string
	mem    []byte
	f      *os.File
	n      int64
}

func (s *spool) Write(p []byte) (int, error) {
	if s.limit >= 0 && s.n+int64(len(p)) > s.limit {
		return 0, errOverBudget
	}
	if s.f == nil {
		if int64(len(s.mem)+len(p)) <= s.memMax {
			s.mem = append(s.mem, p...)
			s.n += int64(len(p))
			return len(p), nil
		}
		f, err := os.CreateTemp(s.dir, "pbxsync-delta-*")
		if err != nil {
			return 0, fmt.Errorf("delta: spool: %w", err)
		}
		// Unlinked at once: nothing is left behind by a crash.
		os.Remove(f.Name())
		s.f = f
		if _, err := f.Write(s.mem); err != nil {
			return 0, fmt.Errorf("delta: spool: %w", err)
		}
		s.mem = nil
	}
	n, err := s.f.Write(p)
	s.n += int64(n)
	if err != nil {
		return n, fmt.Errorf("delta: spool: %w", err)
	}
	return n, nil
}

// writeTo copies the spooled payload to w.
func (s *spool) writeTo(w io.Writer) error {
	if s.f == nil {
		_, err := w.Write(s.mem)
		return err
	}
	if _, err := s.f.Seek(0, io.SeekStart); err != nil {
		return fmt.Errorf("delta: spool: %w", err)
	}
	n, err := io.Copy(w, s.f)
	if err == nil && n != s.n {
		err = fmt.Errorf("delta: spool: read back %d of %d bytes", n, s.n)
	}
	return err
}

// close releases the spool's memory and file.
func (s *spool) close() {
	if s == nil {
		return
	}
	if s.f != nil {
		s.f.Close()
		s.f = nil
	}
	s.mem = nil
}

// branch is one output of a fork; it stops taking data after its first
// error.
type branch struct {
	w   io.Writer
	err error
}

// fork writes to several branches, dropping the ones that fail; it fails
// only when all have.
type fork []*branch

func (f fork) Write(p []byte) (int, error) {
	alive := false
	var first error
	for _, b := range f {
		if b.err == nil {
			if _, err := b.w.Write(p); err != nil {
				b.err = err
			} else {
				alive = true
			}
		}
		if first == nil {
			first = b.err
		}
	}
	if !alive {
		return 0, first
	}
	return len(p), nil
}
