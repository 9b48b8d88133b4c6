package store

import (
	"cmp"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"
)

// openReadOnlyDB opens meta.db for reading. bbolt's writer holds an
// exclusive lock on the file for as long as the agent runs, so when the
// file is locked this reads a private copy instead: taken while at most
// one transaction committed (bbolt reuses a page freed by a commit only in
// a later one, so the pages the copy's meta page reaches are intact), and
// checked before use.
func (s *Store) openReadOnlyDB() error {
	db, err := openDB(s.dbPath(), true, 100*time.Millisecond)
	if err == nil {
		s.db = db
		return nil
	}
	if !errors.Is(err, berrors.ErrTimeout) {
		return err
	}
	return s.loadCopy()
}

// refreshCopy takes a new copy when the writer committed since the last.
func (s *Store) refreshCopy() error {
	s.copyMu.Lock()
	defer s.copyMu.Unlock()
	f, err := os.Open(s.dbPath())
	if err != nil {
		return err
	}
	tx, err := dbTxID(f)
	_ = f.Close()
	if err != nil || tx == s.copyTx {
		return err
	}
	old, oldPath := s.db, s.dbCopy
	if err := s.loadCopy(); err != nil {
		return err
	}
	// a reader still in the old copy keeps its mapping until it is done
	go func() {
		_ = old.Close()
		_ = os.Remove(oldPath)
	}()
	return nil
}

// loadCopy copies the database and opens the copy.
func (s *Store) loadCopy() error {
	var last error
	for range 5 {
		path, txid, err := s.copyDB()
		if err != nil {
			last = err
			continue
		}
		db, err := openDB(path, true, 0)
		if err == nil {
			err = db.View(func(tx *bolt.Tx) error {
				var first error
				for e := range tx.Check() {
					first = cmp.Or(first, e)
				}
				return first
			})
			if err == nil {
				s.db, s.dbCopy, s.copyTx = db, path, txid
				return nil
			}
			_ = db.Close()
		}
		_ = os.Remove(path)
		last = err
	}
	return fmt.Errorf("read %s while the agent writes it: %w", s.dbPath(), last)
}

// copyDB copies meta.db to a temporary file and returns its name and the
// writer's transaction id before the copy; it fails when more than one
// transaction committed during the copy.
func (s *Store) copyDB() (string, uint64, error) {
	src, err := os.Open(s.dbPath())
	if err != nil {
		return "", 0, err
	}
	defer src.Close()
	before, err := dbTxID(src)
	if err != nil {
		return "", 0, err
	}
	dst, err := os.CreateTemp("", "pbxsync-meta-*.db")
	if err != nil {
		return "", 0, err
	}
	_, err = io.Copy(dst, io.NewSectionReader(src, 0, 1<<62))
	if cerr := dst.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		var after uint64
		if after, err = dbTxID(src); err == nil && after > before+1 {
			err = fmt.Errorf("%d transactions committed during the copy", after-before)
		}
	}
	if err != nil {
		_ = os.Remove(dst.Name())
		return "", 0, err
	}
	return dst.Name(), before, nil
}

// dbTxID returns the newest transaction id in the two meta pages of a
// bbolt file (page header 16 bytes; meta: magic, version, page size,
// flags, root 16, freelist 8, pgid 8, txid 8).
func dbTxID(f *os.File) (uint64, error) {
	var hdr [80]byte
	if _, err := f.ReadAt(hdr[:], 0); err != nil {
		return 0, fmt.Errorf("read meta page: %w", err)
	}
	const magic = 0xED0CDAED
	pageSize := int64(binary.LittleEndian.Uint32(hdr[24:28]))
	var best uint64
	for _, off := range []int64{0, pageSize} {
		var m [80]byte
		if _, err := f.ReadAt(m[:], off); err != nil {
			continue
		}
		if binary.LittleEndian.Uint32(m[16:20]) != magic {
			continue
		}
		best = max(best, binary.LittleEndian.Uint64(m[64:72]))
	}
	if best == 0 && pageSize == 0 {
		return 0, fmt.Errorf("%w: %s has no valid meta page", ErrCorrupt, dbName)
	}
	return best, nil
}
