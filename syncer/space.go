package syncer

import (
	"errors"
	"fmt"
	"syscall"

	"pbxsync/internal/index"
)

// An apply writes every new file into its staging directory, on the job
// root's file system, before it renames any of them into the tree and
// before it removes anything: the whole generation's new content must fit
// at once. A target whose file system cannot hold it (a disk that
// recordings filled, a tree larger than the disk) used to find out file
// by file: an initial sync of 100,000 files staged ~76,000 of them (12 s
// of a core, 110 MB written) before ENOSPC, rolled back, and did it again
// each time the source repeated its announcement, for as long as the disk
// stayed full. The apply now reckons what it needs before it stages
// anything (spaceNeed) against what the file system has free (fsSpace)
// and fails at once when it does not fit (NoSpaceError); the target then
// waits for room (spacewait.go) instead of trying again every few
// seconds.

// spaceNeed is what an apply adds to its file system before it removes
// anything: bytes in whole blocks, and inodes.
type spaceNeed struct {
	Bytes  uint64
	Inodes uint64
	Files  int // the files to stage (for the message)
}

// add counts one new file of size bytes, or a directory (dir), in blocks
// of block bytes.
func (n *spaceNeed) add(size int64, dir bool, block uint64) {
	n.Inodes++
	if dir {
		n.Bytes += block
		return
	}
	n.Files++
	if size > 0 {
		b := uint64(size)
		n.Bytes += (b + block - 1) / block * block
	}
}

// fsSpace is what a file system has free for an unprivileged writer
// (statfs f_bavail: the blocks ext4 keeps for root are left to root).
type fsSpace struct {
	Block       uint64 // the file system's block size
	Free        uint64 // bytes free
	Total       uint64 // bytes in all
	FreeInodes  uint64
	TotalInodes uint64 // 0: the file system does not count inodes (btrfs)
}

// spaceReserveMax bounds the part of a file system an apply leaves free
// (spaceReserve).
const spaceReserveMax = 64 << 20

// spaceReserve is what an apply leaves free on its file system, bytes
// and inodes: 1 % of it, at most spaceReserveMax bytes. A sync that
// takes the last block leaves Asterisk no room for a recording, a
// voicemail or its log.
func (s fsSpace) spaceReserve() (bytes, inodes uint64) {
	return min(s.Total/100, spaceReserveMax), s.TotalInodes / 100
}

// fits reports whether need fits into s, its reserve kept.
func (s fsSpace) fits(need spaceNeed) bool {
	rb, ri := s.spaceReserve()
	if need.Bytes+rb > s.Free {
		return false
	}
	return s.TotalInodes == 0 || need.Inodes+ri <= s.FreeInodes
}

// ErrNoSpace is what a NoSpaceError is (errors.Is): the file system has
// no room for the apply. isNoSpace takes ENOSPC and EDQUOT too.
var ErrNoSpace = errors.New("no space for the apply")

// NoSpaceError says that an apply did not start because its file system
// has not the room it needs.
type NoSpaceError struct {
	Dir  string    // the job root
	Need spaceNeed // what the apply needed
	Full spaceNeed // what it needs once the files a fetch staged are dropped
	Have fsSpace
}

func (e *NoSpaceError) Error() string {
	rb, ri := e.Have.spaceReserve()
	leaves := bytesText(rb)
	if e.Have.TotalInodes > 0 {
		leaves += fmt.Sprintf(" and %d inodes", ri)
	}
	return fmt.Sprintf("not enough space on the file system of %s: the apply needs %s and %d inodes (new files: %d) before it removes anything; %s, and it leaves %s to others. Nothing was written; it tries again once there is room",
		e.Dir, bytesText(e.Need.Bytes), e.Need.Inodes, e.Need.Files, e.Have.freeText(), leaves)
}

// freeText is what s has free, as the messages say it.
func (s fsSpace) freeText() string {
	if s.TotalInodes == 0 {
		return bytesText(s.Free) + " are free"
	}
	return fmt.Sprintf("%s and %d inodes are free", bytesText(s.Free), s.FreeInodes)
}

// Is makes errors.Is(e, ErrNoSpace) true.
func (e *NoSpaceError) Is(target error) bool { return target == ErrNoSpace }

// isNoSpace reports whether err says that a file system had no room: a
// NoSpaceError, or a write that failed with ENOSPC or EDQUOT.
func isNoSpace(err error) bool {
	return errors.Is(err, ErrNoSpace) || errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EDQUOT)
}

// roomFor returns a NoSpaceError when the writes and directories of ops
// (towards wanted) do not fit on the file system of the staging
// directory, nil when they fit or its free space cannot be read (the
// apply then finds out as it writes).
func (a *Applier) roomFor(ops []Op, wanted func(i int) index.Item) error {
	free, ok := a.freeSpace()
	if !ok {
		return nil
	}
	need, full := a.applyNeed(ops, wanted, max(free.Block, 1))
	if need.Inodes == 0 || free.fits(need) {
		return nil
	}
	return &NoSpaceError{Dir: a.Root, Need: need, Full: full, Have: free}
}

// freeSpace reads what the staging directory's file system has free
// (statSpace, or a test's stand-in).
func (a *Applier) freeSpace() (fsSpace, bool) {
	if a.statSpace != nil {
		return a.statSpace(a.Staging)
	}
	return statSpace(a.Staging)
}

// applyNeed is what the writes and directories of ops need on the file
// system in blocks of block bytes: need leaves out the writes whose
// content a fetch staged already (those files are written), full counts
// them too (what a retry needs once they are dropped). A content that a
// fetch staged once for several paths counts for none of them: one takes
// the staged file, the others stage anew (files of the same content are
// few; a set of the prestaged ones taken would cost ~5 MB at 100,000
// files, at the apply's peak of memory), so need can come out low by
// them, and the apply then finds out as it writes.
func (a *Applier) applyNeed(ops []Op, wanted func(i int) index.Item, block uint64) (need, full spaceNeed) {
	a.prestageMu.Lock()
	defer a.prestageMu.Unlock()
	for i, op := range ops {
		switch op.Kind {
		case OpMkdir:
			need.add(0, true, block)
			full.add(0, true, block)
		case OpWrite:
			w := wanted(i)
			full.add(w.Size, false, block)
			if !a.prestaged.has(w.Hash) {
				need.add(w.Size, false, block)
			}
		}
	}
	return need, full
}
