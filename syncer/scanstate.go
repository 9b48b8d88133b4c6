package syncer

import (
	"encoding/binary"
	"fmt"
	"slices"

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
	return a.Dev == b.Dev && a.Inode == b.Inode && a.CTime == b.CTime && sameItem(a.Item, b.Item)
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

// saveScan writes the scan state of the paths noted since the last save.
func (j *job) saveScan() error {
	j.waitScanSave()
	roots, states := j.takeScanDirty()
	if roots == nil {
		return nil
	}
	if err := j.putScanStates(roots, states); err != nil {
		j.noteDirty(roots) // saved next time
		return err
	}
	return nil
}

// saveScanInBackground is saveScan for a large change (an initial sync's
// 100k paths): the states are copied on the job's loop and encoded and
// written by another goroutine, in transactions of a bounded number of
// paths (Store.PutScanStates), so that neither the loop nor another write
// of the store (the first edits after an initial sync) waits for all of
// it. One save at a time: while one runs, the paths noted since stay
// noted.
func (j *job) saveScanInBackground() {
	if j.scanSaving != nil {
		select {
		case <-j.scanSaving:
			j.scanSaving = nil
		default:
			return // the one running ends first
		}
	}
	roots, states := j.takeScanDirty()
	if roots == nil {
		return
	}
	done := make(chan struct{})
	j.scanSaving = done
	go func() {
		defer close(done)
		if err := j.putScanStates(roots, states); err != nil {
			// those files are hashed again at the next start
			j.log.Warn("cannot save scan state", "err", err)
		}
	}()
}

// waitScanSave waits for a save started by saveScanInBackground.
func (j *job) waitScanSave() {
	if j.scanSaving != nil {
		<-j.scanSaving
		j.scanSaving = nil
	}
}

// takeScanDirty returns the noted paths (sorted) and a copy of the scan
// state at and below them, and forgets the notes; nil roots when nothing
// is noted.
func (j *job) takeScanDirty() ([]string, map[string]hostmon.FileState) {
	if len(j.scanDirty) == 0 {
		return nil, nil
	}
	roots := make([]string, 0, len(j.scanDirty))
	states := make(map[string]hostmon.FileState, len(j.scanDirty))
	walk := false
	for p := range j.scanDirty {
		roots = append(roots, p)
		if st, ok := j.states[p]; ok && st.Kind == index.KindFile {
			states[p] = st
		} else {
			walk = true // a directory or a removed path: what lies below
		}
	}
	if walk {
		for p, st := range j.states {
			if underSet(p, j.scanDirty) {
				states[p] = st
			}
		}
	}
	slices.Sort(roots)
	j.scanDirty = nil
	return roots, states
}

// putScanStates encodes states and saves them for roots.
func (j *job) putScanStates(roots []string, states map[string]hostmon.FileState) error {
	set := make(map[string][]byte, len(states))
	for p, st := range states {
		set[p] = encodeScanState(&st)
	}
	return j.a.store.PutScanStates(j.cfg.Name, roots, set)
}

// loadScan reads the saved scan state; a damaged entry is dropped (the
// next scan hashes that file again).
func (j *job) loadScan() (map[string]hostmon.FileState, error) {
	out := map[string]hostmon.FileState{}
	var bad int
	var vs index.Vectors // the states share their version vectors
	err := j.a.store.ScanStates(j.cfg.Name, func(p string, v []byte) error {
		st, err := decodeScanState(p, v, &vs)
		if err != nil {
			bad++
			return nil
		}
		out[p] = st
		return nil
	})
	if bad > 0 {
		j.log.Warn("dropped damaged saved scan states; those files are hashed again", "count", bad)
	}
	return out, err
}
