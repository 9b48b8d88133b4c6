package syncer

import (
	"context"
	"encoding/binary"
	"fmt"
	"slices"
	"time"

	"pbxsync/hostmon"
	"pbxsync/internal/index"
	"pbxsync/internal/store"
)

// The scan state (what the last scan found at every path, with the inode,
// device and ctime that let the next scan trust a hash) is kept in the
// store per path: a save writes the paths scanned since the last one, not
// the whole tree. A value is uvarint dev, uvarint inode, varint ctime,
// then the item (store.MarshalItem).

func encodeScanState(st *hostmon.FileState) []byte {
	b := binary.AppendUvarint(nil, st.Dev)
	b = binary.AppendUvarint(b, st.Inode)
	b = binary.AppendVarint(b, st.CTime)
	return append(b, store.MarshalItem(&st.Item)...)
}

func decodeScanState(path string, b []byte, vs *index.Vectors) (hostmon.FileState, error) {
	var st hostmon.FileState
	var n int
	if st.Dev, n = binary.Uvarint(b); n <= 0 {
		return st, fmt.Errorf("scan state of %q: bad device", path)
	}
	b = b[n:]
	if st.Inode, n = binary.Uvarint(b); n <= 0 {
		return st, fmt.Errorf("scan state of %q: bad inode", path)
	}
	b = b[n:]
	if st.CTime, n = binary.Varint(b); n <= 0 {
		return st, fmt.Errorf("scan state of %q: bad ctime", path)
	}
	it, err := store.UnmarshalItemShared(path, b[n:], vs)
	if err != nil {
		return st, err
	}
	st.Item = it
	return st, nil
}

// sameScanState reports whether a and b would be saved alike.
func sameScanState(a, b hostmon.FileState) bool {
	return a.Dev == b.Dev && a.Inode == b.Inode && a.CTime == b.CTime && a.Item.Equal(&b.Item)
}

// noteScanned records which paths of the scan state changed: for a full
// scan (scope nil) the paths whose state differs from before, for a
// partial one the scanned paths (whatever lies below them).
func (j *job) noteScanned(before, after map[string]hostmon.FileState, scope []string) {
	if j.scanDirty == nil {
		j.scanDirty = map[string]bool{}
	}
	if scope != nil {
		for _, p := range scope {
			j.scanDirty[p] = true
		}
		return
	}
	for p, st := range after {
		if old, ok := before[p]; !ok || !sameScanState(old, st) {
			j.scanDirty[p] = true
		}
	}
	for p := range before {
		if _, ok := after[p]; !ok {
			j.scanDirty[p] = true
		}
	}
}

// noteDirty records paths whose scan state changed (recorded or removed)
// for the next save.
func (j *job) noteDirty(paths []string) {
	if j.scanDirty == nil {
		j.scanDirty = map[string]bool{}
	}
	for _, p := range paths {
		j.scanDirty[p] = true
	}
}

// scanSaveChunk is about how many paths' scan states one step of a save
// encodes and writes (more when one noted directory holds more): a save
// holds the encoded states of one step at a time, never a copy of the
// whole scan state (an initial sync's 100k paths took 15 MiB copied and 8
// MiB encoded at once).
const scanSaveChunk = 4096

// scanSave is a save of the scan state under way: the noted paths not
// below another one (roots), in order, with how many scanned paths are at
// or below each; saved step by step from next on (nextScanChunk), each
// step reading the states below its roots as ranges of the scan state
// (States.Under). A path whose state changes during the save is saved as
// it is when its step comes, and again by the next save (it is noted
// again).
type scanSave struct {
	roots []string // sorted; none at or below another
	first []int    // len(roots)+1: roots[i] had first[i+1]-first[i] paths at or below it
	next  int      // the first root not saved yet
	// release: hand memory back to the system when the save is done
	// (after a large generation, whose save is the last of its garbage);
	// spill: move the scan state out of memory first (spill.go; not
	// before: a save of 100k file roots, a target's after its initial
	// sync, reads each from memory)
	release, spill bool
	began          time.Time // when a save in the background began (zero: on the caller's goroutine)
}

// saveScan writes the scan state of the paths noted since the last save
// (and finishes a save under way first).
func (j *job) saveScan() error {
	if err := j.finishScanSave(); err != nil {
		return err
	}
	return j.writeScanSave(j.takeScanDirty())
}

// saveScanInBackground is saveScan for a large change (an initial sync's
// 100k paths): each step's states are encoded on the job's loop and
// written by another goroutine (Store.PutScanStates), which hands the
// loop the next step when it is done, so that neither the loop nor
// another write of the store (the first edits after an initial sync)
// waits for all of it. One save at a time: while one runs, the paths
// noted since stay noted.
func (j *job) saveScanInBackground() {
	if j.scanSave != nil {
		return // the one running ends first
	}
	j.scanSave = j.takeScanDirty()
	if j.scanSave != nil {
		j.scanSave.began = time.Now()
	}
	j.continueScanSave()
}

// continueScanSave starts the next step of the save under way when the
// one before is written; the job's loop calls it when a step ends, and
// every tick in case that call was dropped with a full inbox.
func (j *job) continueScanSave() {
	if j.scanSaving != nil {
		select {
		case <-j.scanSaving:
			j.scanSaving = nil
		default:
			return // the step running ends first
		}
	}
	if j.scanSave == nil {
		return
	}
	roots, set := j.nextScanChunk(j.scanSave)
	if roots == nil {
		j.scanSaveDone(j.scanSave)
		j.scanSave = nil
		return
	}
	done := make(chan struct{})
	j.scanSaving = done
	go func() {
		if err := j.a.store.PutScanStates(j.cfg.Name, roots, set); err != nil {
			// those files are hashed again at the next start
			j.log.Warn("cannot save scan state", "err", err)
		}
		close(done)
		select {
		case j.inbox <- j.scanSaveStepEvent():
		default: // the next tick goes on
		}
	}()
}

// scanSaveStepEvent is what a step of a save in the background posts to
// the job's loop when it is written: the next step, which reads the scan
// state only (a parked index stays parked; the last step often ends after
// the index was let go of).
func (j *job) scanSaveStepEvent() event {
	return event{do: func(context.Context) { j.continueScanSave() }, noIndex: true}
}

// finishScanSave writes what remains of the save under way, on the
// caller's goroutine.
func (j *job) finishScanSave() error {
	if j.scanSaving != nil {
		<-j.scanSaving
		j.scanSaving = nil
	}
	s := j.scanSave
	j.scanSave = nil
	return j.writeScanSave(s)
}

// writeScanSave writes the steps of s that remain (none when s is nil);
// after an error the paths not written are noted again, to be saved next
// time.
func (j *job) writeScanSave(s *scanSave) error {
	for s != nil {
		from := s.next
		roots, set := j.nextScanChunk(s)
		if roots == nil {
			j.scanSaveDone(s)
			return nil
		}
		if err := j.a.store.PutScanStates(j.cfg.Name, roots, set); err != nil {
			j.noteDirty(s.roots[from:])
			return err
		}
	}
	return nil
}

// scanSaveDone ends save s: see scanSave.release.
func (j *job) scanSaveDone(s *scanSave) {
	if !s.began.IsZero() {
		j.log.Info("saved the scan state", "paths", s.first[len(s.roots)], "took", time.Since(s.began).Round(time.Millisecond))
	}
	if s.spill {
		j.spillLargeStates()
	}
	if s.release {
		j.releaseMemory()
	}
}

// nextScanChunk encodes the states of the next step of s and moves s on;
// nil roots when s is done.
func (j *job) nextScanChunk(s *scanSave) ([]string, map[string][]byte) {
	if s.next >= len(s.roots) {
		return nil, nil
	}
	end := s.next + 1
	for end < len(s.roots) && s.first[end+1]-s.first[s.next] <= scanSaveChunk {
		end++
	}
	roots := s.roots[s.next:end]
	set := make(map[string][]byte, s.first[end]-s.first[s.next])
	for _, r := range roots {
		// what is there now: a path removed since is dropped under its
		// root, one added since saved too; a file stands for itself
		if st, ok := j.states.Get(r); ok && st.Kind == index.KindFile {
			set[r] = encodeScanState(&st)
			continue
		}
		for p, st := range j.states.Under(r) {
			set[p] = encodeScanState(&st)
		}
	}
	s.next = end
	return roots, set
}

// takeScanDirty returns the noted paths as a save (nil when none is
// noted) and forgets the notes. A noted file stands for itself; a noted
// directory or removed path for what lies below it too, which the scan
// state finds as a range of its paths (States.PathsUnder: counted here,
// no state copied, and no pass over every path for a directory's mtime
// changed by a one-file edit).
func (j *job) takeScanDirty() *scanSave {
	if len(j.scanDirty) == 0 {
		return nil
	}
	noted := j.scanDirty
	j.scanDirty = nil
	s := &scanSave{}
	for p := range noted {
		if p != "" && (underSet(index.Parent(p), noted) || noted[""]) {
			continue // saved with the noted directory above it
		}
		s.roots = append(s.roots, p)
	}
	slices.Sort(s.roots)
	s.first = make([]int, len(s.roots)+1)
	for i, r := range s.roots {
		n := 0
		if st, ok := j.states.Get(r); ok && st.Kind == index.KindFile {
			n = 1
		} else {
			for range j.states.PathsUnder(r) {
				n++
			}
		}
		s.first[i+1] = s.first[i] + n
	}
	return s
}

// loadScan reads the saved scan state; a damaged entry is dropped (the
// next scan hashes that file again). The store holds it in path order,
// which States takes without sorting.
func (j *job) loadScan() (*hostmon.States, error) {
	out := &hostmon.States{}
	var bad int
	var vs index.Vectors // the states share their version vectors
	err := j.a.store.ScanStates(j.cfg.Name, func(p string, v []byte) error {
		st, err := decodeScanState(p, v, &vs)
		if err != nil {
			bad++
			return nil
		}
		out.Set(st)
		return nil
	})
	if bad > 0 {
		j.log.Warn("dropped damaged saved scan states; those files are hashed again", "count", bad)
	}
	out.Compact()
	return out, err
}
