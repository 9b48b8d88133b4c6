package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	bolt "go.etcd.io/bbolt"

	"pbxsync/internal/index"
)

// migrate1 imports a format-1 store (plain files under jobs/ and blobs/)
// into the database: every job's generations oldest first, each as its
// change record against its predecessor (one transaction per
// generation, so memory holds one index at a time), the generation
// counter, extras, job state and journal, then the small blobs. The
// format-1 files are not changed: a crash starts the migration again from
// them (Open removes the partial database). cleanup1 removes them once
// FORMAT says 2.
func (s *Store) migrate1() error {
	ctx := context.Background()
	ents, err := os.ReadDir(s.jobsDir())
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	for _, e := range ents {
		job, ok := jobFromDirName(e.Name())
		if !e.IsDir() || !ok {
			continue
		}
		if err := s.migrateJob1(ctx, job); err != nil {
			return fmt.Errorf("job %q: %w", job, err)
		}
	}
	return s.migrateBlobs1()
}

func (s *Store) migrateJob1(ctx context.Context, job string) error {
	nums, err := s.genNumbers(job)
	if err != nil {
		return err
	}
	gdir, _ := s.genDir(job)
	jdir, _ := s.jobDir(job)
	for _, n := range nums {
		mb, err := readFileMax(filepath.Join(gdir, genName(n, "meta")), maxMetaFile1)
		if err != nil {
			return err
		}
		m, err := decodeMeta1(job, n, mb)
		if err != nil {
			return fmt.Errorf("generation %d: %w", n, err)
		}
		ib, err := readFileMax(filepath.Join(gdir, genName(n, "index")), maxIndexFile1)
		if err != nil {
			return fmt.Errorf("generation %d: index: %w", n, err)
		}
		x, err := decodeIndex1(job, n, m.indexSum, ib)
		if err != nil {
			return fmt.Errorf("generation %d: %w", n, err)
		}
		info := m.info
		g := &Generation{Index: x}
		err = s.update(func(tx *bolt.Tx) error {
			_, _, err := s.recordTx(ctx, tx, &info, 0, false, false, func(items *bolt.Bucket) (changeList, error) {
				return diffItems(ctx, items, g.Index)
			})
			return err
		})
		if err != nil {
			return fmt.Errorf("generation %d: %w", n, err)
		}
	}
	return s.update(func(tx *bolt.Tx) error {
		jb, err := jobBucket(tx, job, true)
		if err != nil {
			return err
		}
		if b, err := readFileMax(filepath.Join(jdir, "next"), 4096); err == nil {
			var d struct {
				Next uint64 `json:"next"`
			}
			if body, err := decodeEnvelope("next", b); err == nil && json.Unmarshal(body, &d) == nil && d.Next > u64val(jb.Get(keyNext)) {
				if err := jb.Put(keyNext, u64key(d.Next)); err != nil {
					return err
				}
			}
		}
		if b, err := readFileMax(filepath.Join(jdir, "extras"), maxMetaFile1); err == nil {
			xs, err := decodeExtras1(b)
			if err != nil {
				return fmt.Errorf("extras: %w", err)
			}
			if err := writeExtras(jb, xs); err != nil {
				return err
			}
			for _, x := range xs {
				if err := ref(tx, x.Hash, 1); err != nil {
					return err
				}
			}
		}
		if b, err := readFileMax(filepath.Join(jdir, "state"), maxIndexFile1); err == nil {
			// a damaged state is dropped: the syncer rescans
			if body, err := decodeEnvelope("state", b); err == nil {
				if err := jb.Put(keyState, seal(keyState, body)); err != nil {
					return err
				}
			}
		}
		if b, err := readFileMax(filepath.Join(jdir, "journal"), maxIndexFile1); err == nil {
			j, err := decodeJournal1(job, b)
			if err != nil {
				// the syncer treats a damaged journal as an apply not started
				s.log.Warn("migration: damaged journal dropped", "job", job, "err", err)
			} else {
				body, err := encodeJournal(j)
				if err != nil {
					return err
				}
				if err := jb.Put(keyJournal, body); err != nil {
					return err
				}
			}
		}
		return nil
	})
}

// diffItems returns the changes that turn items into x: the paths where
// they differ, each with its item looked up in x (none: removed).
func diffItems(ctx context.Context, items *bolt.Bucket, x index.Index) (changeList, error) {
	var paths []string
	c := items.Cursor()
	k, v := c.First()
	if k == nil {
		// a first generation: every item is a change
		paths = make([]string, 0, x.Len())
	}
	for ; k != nil; k, v = c.Next() {
		if err := ctx.Err(); err != nil {
			return changeList{}, err
		}
		nw, ok := x.Get(string(k))
		if !ok {
			paths = append(paths, string(k))
			continue
		}
		old, err := decodeItem(nw.Path, v)
		if err != nil {
			return changeList{}, err
		}
		if !old.Equal(&nw) {
			paths = append(paths, nw.Path)
		}
	}
	for p := range x.All() {
		if items.Get([]byte(p)) == nil {
			paths = append(paths, p)
		}
	}
	return changeList{paths: paths, item: func(p string) (index.Item, bool) {
		return x.Get(p)
	}}, nil
}

// migrateBlobs1 copies the small blob files into the database, in
// batches, and lists every blob nothing refers to as unreferenced since
// its file's mtime.
func (s *Store) migrateBlobs1() error {
	subs, err := os.ReadDir(s.blobsDir())
	if err != nil {
		return err
	}
	type blob struct {
		h     index.Hash
		data  []byte
		mtime int64
	}
	var batch []blob
	var size int
	flush := func() error {
		err := s.update(func(tx *bolt.Tx) error {
			for _, b := range batch {
				if b.data != nil {
					if err := tx.Bucket(bktBlobs).Put(b.h[:], b.data); err != nil {
						return err
					}
				}
				if tx.Bucket(bktRefs).Get(b.h[:]) == nil {
					if err := tx.Bucket(bktUnref).Put(b.h[:], u64key(uint64(b.mtime))); err != nil {
						return err
					}
				}
			}
			return nil
		})
		batch, size = batch[:0], 0
		return err
	}
	for _, sub := range subs {
		if !sub.IsDir() {
			continue
		}
		dir := filepath.Join(s.blobsDir(), sub.Name())
		ents, err := os.ReadDir(dir)
		if err != nil {
			return err
		}
		for _, e := range ents {
			h, err := index.ParseHash(e.Name())
			if err != nil || h.String()[:2] != sub.Name() {
				continue
			}
			info, err := e.Info()
			if err != nil || !info.Mode().IsRegular() {
				continue
			}
			b := blob{h: h, mtime: info.ModTime().UnixNano()}
			if info.Size() <= SmallBlob {
				if b.data, err = os.ReadFile(filepath.Join(dir, e.Name())); err != nil {
					return err
				}
				size += len(b.data)
			}
			batch = append(batch, b)
			if size >= flushPendingBytes || len(batch) >= 10000 {
				if err := flush(); err != nil {
					return err
				}
			}
		}
	}
	return flush()
}

// cleanup1 removes what format 1 kept as files and the database holds now:
// the metadata under jobs/ and the small blob files. A crash in between
// leaves files the next Open (jobs/) or the orphan sweep (blobs) removes.
func (s *Store) cleanup1() {
	if err := os.RemoveAll(s.jobsDir()); err != nil {
		s.log.Warn("migration: remove the format-1 metadata", "dir", s.jobsDir(), "err", err)
	}
	subs, err := os.ReadDir(s.blobsDir())
	if err != nil {
		return
	}
	for _, sub := range subs {
		dir := filepath.Join(s.blobsDir(), sub.Name())
		ents, _ := os.ReadDir(dir)
		for _, e := range ents {
			h, err := index.ParseHash(e.Name())
			if err != nil {
				continue
			}
			small := false
			_ = s.db.View(func(tx *bolt.Tx) error {
				small = hasSmall(tx, h)
				return nil
			})
			if small {
				_ = os.Remove(filepath.Join(dir, e.Name()))
			}
		}
	}
	s.log.Info("store migrated to format 2 (bbolt metadata, small blobs in pack files)", "dir", s.dir)
}
