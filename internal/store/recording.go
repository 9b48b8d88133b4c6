package store

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"sort"
	"sync"

	bolt "go.etcd.io/bbolt"

	"pbxsync/internal/index"
)

// A generation that changes more than recordChunkChanges paths is recorded
// in several transactions, so that no one transaction holds the whole
// generation: bbolt keeps every node a transaction changes in memory
// until the commit, then a copy of each as a page (a 100,000-file initial
// sync recorded at once held ~50 MiB of them, the target's peak). The
// steps, each one commit:
//
//  1. reserve the generation's number n and write the recording mark
//     (jobs/<job> key "recording": n, the newest generation prev, the
//     phase);
//  2. write the changes to items a chunk at a time in path order, each
//     with what it replaced in the change record of n (created even when
//     prev is 0: it is what undoes the chunks), then a changed list
//     of more than changedInlineMax paths out of line, a chunk at a
//     time (jobs/<job>/changed/<n>; in step 4 it held ~21 MiB of nodes
//     and sealed values at 100,000 paths);
//  3. apply the reference count changes a chunk of hashes at a time in
//     hash order (each chunk a range of the refs and unref buckets), the
//     mark naming the last hash applied;
//  4. write n's metadata and the item count, drop the change record of a
//     first generation and the mark: n exists from this commit on.
//
// Until step 4 commits, n does not exist for any reader: the newest
// generation is prev, which readGeneration rebuilds by undoing the change
// records of every later number, the partial one included. A record that
// fails part way is undone at once (undoRecording); one that a crash
// interrupted, at the next Open. Undoing reverses the reference counts
// the mark says were applied (recomputed from the record), then puts the
// recorded old items back, a chunk at a time, and drops what was written
// of the changed list with the mark; every step of it can be interrupted
// too.
const recordChunkChanges = 8192

// keyRecording is the key of the recording mark in a job's bucket.
var keyRecording = []byte("recording")

// recordChunk returns the most changes written in one transaction.
func (s *Store) recordChunk() int {
	if s.opt.recordChunk > 0 {
		return s.opt.recordChunk
	}
	return recordChunkChanges
}

// recordingMark is the value of a job's recording mark.
type recordingMark struct {
	n, prev uint64
	refs    bool       // step 3 began: the counts of hashes up to done are applied
	done    index.Hash // the last hash whose count change is applied
}

func (m *recordingMark) encode() []byte {
	b := binary.BigEndian.AppendUint64(nil, m.n)
	b = binary.BigEndian.AppendUint64(b, m.prev)
	flag := byte(0)
	if m.refs {
		flag = 1
	}
	b = append(b, flag)
	b = append(b, m.done[:]...)
	return seal(keyRecording, b)
}

// readMark returns the recording mark of jb, nil if none. Every error
// wraps ErrCorrupt.
func readMark(jb *bolt.Bucket) (*recordingMark, error) {
	v := jb.Get(keyRecording)
	if v == nil {
		return nil, nil
	}
	return decodeMark(v)
}

// decodeMark decodes and checks a recording mark. Every error wraps
// ErrCorrupt.
func decodeMark(v []byte) (*recordingMark, error) {
	b, err := unseal("recording mark", keyRecording, v)
	if err != nil {
		return nil, err
	}
	if len(b) != 8+8+1+index.HashSize || b[16] > 1 {
		return nil, fmt.Errorf("%w: recording mark: bad value", ErrCorrupt)
	}
	m := &recordingMark{n: binary.BigEndian.Uint64(b), prev: binary.BigEndian.Uint64(b[8:]), refs: b[16] == 1}
	copy(m.done[:], b[17:])
	if m.n == 0 || m.n <= m.prev {
		return nil, fmt.Errorf("%w: recording mark: generation %d after %d", ErrCorrupt, m.n, m.prev)
	}
	return m, nil
}

// chunkedRecord is a generation being recorded in chunks.
type chunkedRecord struct {
	info     *GenerationInfo
	mark     recordingMark
	changes  changeList
	count    int64        // the job's items before
	progress *recordSteps // Generation.OnProgress's, nil for none
}

// recordSteps reports how far a record in chunks got to
// Generation.OnProgress, in changes: its three passes (the changes, a
// long changed list, the reference counts: a row of the store each) are
// counted in proportion, so that the last chunk of reference counts ends
// it rather than the last chunk of changes.
type recordSteps struct {
	fn       func(written, total int)
	changes  int // what it reports as the total
	steps    int // rows to write in all (the reference counts estimated, one a change, until known)
	done     int // rows written
	reported int
}

// newRecordSteps reports a record of changes changes, of which listed
// paths go out of line, to fn (nil: none).
func newRecordSteps(fn func(written, total int), changes, listed int) *recordSteps {
	if fn == nil {
		return nil
	}
	return &recordSteps{fn: fn, changes: changes, steps: 2*changes + listed}
}

// advance counts n more rows written and reports.
func (r *recordSteps) advance(n int) {
	if r == nil {
		return
	}
	r.done += n
	r.report()
}

// doneSteps is the rows written so far.
func (r *recordSteps) doneSteps() int {
	if r == nil {
		return 0
	}
	return r.done
}

// resize makes the rows to write in all steps (the reference counts known).
func (r *recordSteps) resize(steps int) {
	if r != nil {
		r.steps = max(steps, r.done)
	}
}

func (r *recordSteps) report() {
	w := r.changes
	if r.done < r.steps {
		w = int(int64(r.done) * int64(r.changes) / int64(r.steps))
	}
	r.reported = max(r.reported, min(w, r.changes)) // never back
	r.fn(r.reported, r.changes)
}

// lockJob serialises the records of job (a chunked one spans several
// transactions) and returns the unlock.
func (s *Store) lockJob(job string) func() {
	s.jobLocksMu.Lock()
	if s.jobLocks == nil {
		s.jobLocks, s.undoLeft = map[string]*sync.Mutex{}, map[string]bool{}
	}
	m := s.jobLocks[job]
	if m == nil {
		m = &sync.Mutex{}
		s.jobLocks[job] = m
	}
	s.jobLocksMu.Unlock()
	m.Lock()
	return m.Unlock
}

// undoFailed undoes what a chunked record of job that failed in this
// process left because its own undo failed too (a crash leaves a record
// in part that Open undoes). The caller holds the job's lock.
func (s *Store) undoFailed(job string) error {
	s.jobLocksMu.Lock()
	left := s.undoLeft[job]
	delete(s.undoLeft, job)
	s.jobLocksMu.Unlock()
	if !left {
		return nil
	}
	if err := s.undoRecording(job); err != nil {
		s.jobLocksMu.Lock()
		s.undoLeft[job] = true
		s.jobLocksMu.Unlock()
		return err
	}
	return nil
}

// startRecording is step 1 in tx: it reserves info's number and writes
// the mark and the empty change record.
func startRecording(tx *bolt.Tx, jb *bolt.Bucket, info *GenerationInfo, prev uint64, changes changeList) (*chunkedRecord, error) {
	if info.Number == 0 {
		info.Number = nextNumber(jb)
	}
	n := info.Number
	if _, err := jb.Bucket(bktChanges).CreateBucket(u64key(n)); err != nil {
		return nil, err
	}
	r := &chunkedRecord{info: info, mark: recordingMark{n: n, prev: prev}, changes: changes, count: int64(u64val(jb.Get(keyCount)))}
	if err := jb.Put(keyRecording, r.mark.encode()); err != nil {
		return nil, err
	}
	return r, jb.Put(keyNext, u64key(max(n+1, u64val(jb.Get(keyNext)))))
}

// recordChunked runs steps 2 to 4 of r (see recordChunkChanges); on an
// error it undoes what it wrote.
func (s *Store) recordChunked(ctx context.Context, r *chunkedRecord) (nitems, nchanged int, err error) {
	// counted up by the caller: GC deletes no unreferenced blob meanwhile
	// (those of the chunks not written yet are)
	defer s.recording.Add(-1)
	job, n := r.info.Job, r.mark.n
	nitems, nchanged, err = s.writeChunks(ctx, r)
	if err != nil {
		if uerr := s.undoRecording(job); uerr != nil {
			s.log.Error("cannot undo a generation recorded in part; the next record of the job or Open undoes it", "job", job, "generation", n, "err", uerr)
			s.jobLocksMu.Lock()
			s.undoLeft[job] = true
			s.jobLocksMu.Unlock()
		}
		return 0, 0, err
	}
	return nitems, nchanged, nil
}

func (s *Store) writeChunks(ctx context.Context, r *chunkedRecord) (nitems, nchanged int, err error) {
	job, n, chunk := r.info.Job, r.mark.n, s.recordChunk()
	// bucket returns the job's bucket and the record of n in tx
	bucket := func(tx *bolt.Tx) (jb, rec *bolt.Bucket, err error) {
		if jb, err = jobBucket(tx, job, false); err != nil {
			return nil, nil, err
		}
		if jb != nil {
			rec = jb.Bucket(bktChanges).Bucket(u64key(n))
		}
		if rec == nil {
			return nil, nil, fmt.Errorf("%w: the change record of generation %d being recorded is gone", ErrCorrupt, n)
		}
		return jb, rec, nil
	}
	deltas := newRefDeltas(r.changes.len())
	count := r.count
	for i := 0; i < r.changes.len(); i += chunk {
		part := r.changes.part(i, min(i+chunk, r.changes.len()))
		err := s.update(func(tx *bolt.Tx) error {
			jb, rec, err := bucket(tx)
			if err != nil {
				return err
			}
			rec.FillPercent = fillPercent
			nc, err := writeChanges(ctx, jb, rec, r.mark.prev != 0, part, deltas, &count)
			nchanged += nc
			return err
		})
		if err != nil {
			return 0, 0, err
		}
		r.progress.advance(part.len())
	}
	r.changes = changeList{} // the chunks are written: let it go
	// a long changed list (a first generation's: every path) goes out of
	// line a chunk per transaction too; undoRecording removes a part
	listed := len(r.info.Changed) > changedInlineMax
	for i := 0; listed && i < len(r.info.Changed); i += chunk {
		err := s.update(func(tx *bolt.Tx) error {
			if err := ctx.Err(); err != nil {
				return err
			}
			jb, _, err := bucket(tx)
			if err != nil {
				return err
			}
			return putChangedPart(jb, n, r.info.Changed, i, min(i+chunk, len(r.info.Changed)))
		})
		if err != nil {
			return 0, 0, err
		}
		r.progress.advance(min(chunk, len(r.info.Changed)-i))
	}
	hs := deltas.sorted()
	r.progress.resize(r.progress.doneSteps() + len(hs))
	for i := 0; i < len(hs); i += chunk {
		part := hs[i:min(i+chunk, len(hs))]
		err := s.update(func(tx *bolt.Tx) error {
			if err := ctx.Err(); err != nil {
				return err
			}
			jb, _, err := bucket(tx)
			if err != nil {
				return err
			}
			if err := refSorted(tx, part); err != nil {
				return err
			}
			m := r.mark
			m.refs, m.done = true, part[len(part)-1].h
			return jb.Put(keyRecording, m.encode())
		})
		if err != nil {
			return 0, 0, err
		}
		r.progress.advance(len(part))
	}
	err = s.update(func(tx *bolt.Tx) error {
		if err := ctx.Err(); err != nil {
			return err
		}
		jb, _, err := bucket(tx)
		if err != nil {
			return err
		}
		if r.mark.prev == 0 {
			// a first generation keeps no change record (its old items,
			// if any, were released in step 3)
			if err := jb.Bucket(bktChanges).DeleteBucket(u64key(n)); err != nil {
				return err
			}
		}
		if nitems, err = finishRecord(jb, r.info, r.mark.prev, count, listed); err != nil {
			return err
		}
		return jb.Delete(keyRecording)
	})
	if err != nil {
		return 0, 0, err
	}
	return nitems, nchanged, nil
}

// undoRecordings undoes the generations every job was recording when the
// process that wrote the store stopped (see recordChunkChanges).
func (s *Store) undoRecordings() error {
	var jobs []string
	err := s.view(func(tx *bolt.Tx) error {
		return tx.Bucket(bktJobs).ForEachBucket(func(k []byte) error {
			if tx.Bucket(bktJobs).Bucket(k).Get(keyRecording) != nil {
				jobs = append(jobs, string(k))
			}
			return nil
		})
	})
	if err != nil {
		return err
	}
	for _, job := range jobs {
		if err := s.undoRecording(job); err != nil {
			return fmt.Errorf("job %q: %w", job, err)
		}
	}
	return nil
}

// undoRecording undoes the generation job is recording in part, if any
// (see recordChunkChanges), a chunk per transaction: the reference counts
// applied first (from the highest hash down), then the items.
func (s *Store) undoRecording(job string) error {
	var m *recordingMark
	err := s.view(func(tx *bolt.Tx) error {
		jb, err := jobBucket(tx, job, false)
		if err != nil || jb == nil {
			return err
		}
		m, err = readMark(jb)
		return err
	})
	if err != nil || m == nil {
		return err
	}
	s.log.Warn("undoing a generation recorded in part", "job", job, "generation", m.n)
	chunk := s.recordChunk()
	bucket := func(tx *bolt.Tx) (jb, rec *bolt.Bucket, err error) {
		if jb, err = jobBucket(tx, job, false); err != nil {
			return nil, nil, err
		}
		return jb, jb.Bucket(bktChanges).Bucket(u64key(m.n)), nil
	}
	if m.refs {
		var deltas *refDeltas
		err := s.view(func(tx *bolt.Tx) error {
			jb, rec, err := bucket(tx)
			if err != nil {
				return err
			}
			if rec == nil {
				return fmt.Errorf("%w: generation %d: reference counts applied without a change record", ErrCorrupt, m.n)
			}
			deltas, err = recordDeltas(jb.Bucket(bktItems), rec, m.prev != 0)
			return err
		})
		if err != nil {
			return err
		}
		// the applied ones: those up to m.done
		hs := deltas.sorted()
		hs = hs[:sort.Search(len(hs), func(i int) bool { return compareHashes(hs[i].h, m.done) > 0 })]
		for hi := len(hs); hi > 0; hi -= chunk {
			lo := max(0, hi-chunk)
			err := s.update(func(tx *bolt.Tx) error {
				jb, _, err := bucket(tx)
				if err != nil {
					return err
				}
				for _, x := range hs[lo:hi] {
					if err := ref(tx, x.h, -x.d); err != nil {
						return err
					}
				}
				left := *m
				if lo == 0 {
					left.refs, left.done = false, index.Hash{}
				} else {
					left.done = hs[lo-1].h
				}
				return jb.Put(keyRecording, left.encode())
			})
			if err != nil {
				return err
			}
		}
	}
	for done := false; !done; {
		err := s.update(func(tx *bolt.Tx) error {
			jb, rec, err := bucket(tx)
			if err != nil {
				return err
			}
			if rec != nil {
				var keys [][]byte
				c := rec.Cursor()
				for k, _ := c.First(); k != nil && len(keys) < chunk; k, _ = c.Next() {
					keys = append(keys, bytes.Clone(k))
				}
				if len(keys) > 0 {
					return undoChunk(jb.Bucket(bktItems), rec, keys)
				}
				if err := jb.Bucket(bktChanges).DeleteBucket(u64key(m.n)); err != nil {
					return err
				}
			}
			if err := deleteChanged(jb, m.n); err != nil { // the part of its list written
				return err
			}
			done = true
			return jb.Delete(keyRecording)
		})
		if err != nil {
			return err
		}
	}
	s.log.Info("generation recorded in part undone", "job", job, "generation", m.n)
	return nil
}

// undoChunk puts back at keys of items what rec recorded there, and
// removes them from rec.
func undoChunk(items, rec *bolt.Bucket, keys [][]byte) error {
	items.FillPercent = fillPercent
	for _, k := range keys {
		r := rec.Get(k)
		if len(r) == 0 || r[0] > 1 {
			return fmt.Errorf("%w: change record: %q", ErrCorrupt, k)
		}
		var err error
		if r[0] == 1 {
			err = items.Put(k, bytes.Clone(r[1:]))
		} else {
			err = items.Delete(k)
		}
		if err != nil {
			return err
		}
		if err := rec.Delete(k); err != nil {
			return err
		}
	}
	return nil
}

// recordDeltas returns the reference count changes that writeChanges
// made for the paths rec recorded, with items as they are now.
func recordDeltas(items, rec *bolt.Bucket, keepOld bool) (*refDeltas, error) {
	deltas := &refDeltas{}
	err := rec.ForEach(func(k, r []byte) error {
		if len(r) == 0 || r[0] > 1 {
			return fmt.Errorf("%w: change record: %q", ErrCorrupt, k)
		}
		if v := items.Get(k); v != nil {
			it, err := decodeItem(string(k), v)
			if err != nil {
				return err
			}
			if liveFile(&it) {
				deltas.add(it.Hash, 1)
			}
		}
		if !keepOld && r[0] == 1 {
			old, err := decodeItem(string(k), r[1:])
			if err != nil {
				return err
			}
			if liveFile(&old) {
				deltas.add(old.Hash, -1)
			}
		}
		return nil
	})
	return deltas, err
}
