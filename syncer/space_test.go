package syncer

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"pbxsync/internal/index"
)

func TestSpaceNeed(t *testing.T) {
	t.Parallel()
	var n spaceNeed
	n.add(0, false, 4096)    // an empty file: an inode, no block
	n.add(1, false, 4096)    // one block
	n.add(4096, false, 4096) // one block
	n.add(4097, false, 4096) // two
	n.add(0, true, 4096)     // a directory: an inode and a block
	if want := (spaceNeed{Bytes: 5 * 4096, Inodes: 5, Files: 4}); n != want {
		t.Errorf("need %+v, want %+v", n, want)
	}
}

func TestSpaceFits(t *testing.T) {
	t.Parallel()
	const mib = 1 << 20
	// a file system of 1 GiB keeps 1 % back (10.24 MiB), one of 100 GiB
	// at most spaceReserveMax; inodes 1 %
	gib := fsSpace{Block: 4096, Free: 100 * mib, Total: 1024 * mib, FreeInodes: 1000, TotalInodes: 10000}
	for _, c := range []struct {
		name string
		fs   fsSpace
		need spaceNeed
		want bool
	}{
		{"room", gib, spaceNeed{Bytes: 50 * mib, Inodes: 10}, true},
		{"the reserve is left", gib, spaceNeed{Bytes: 100*mib - 10*mib, Inodes: 10}, false},
		{"up to the reserve", gib, spaceNeed{Bytes: 100*mib - 1024*mib/100, Inodes: 10}, true},
		{"too many inodes", gib, spaceNeed{Bytes: mib, Inodes: 901}, false},
		{"inodes up to the reserve", gib, spaceNeed{Bytes: mib, Inodes: 900}, true},
		{"inodes not counted (btrfs)", fsSpace{Block: 4096, Free: 100 * mib, Total: 1024 * mib}, spaceNeed{Bytes: mib, Inodes: 1 << 30}, true},
		{"a large file system keeps spaceReserveMax", fsSpace{Block: 4096, Free: 100 * mib, Total: 100 << 30}, spaceNeed{Bytes: 100*mib - spaceReserveMax, Inodes: 1}, true},
		{"… and not a byte more", fsSpace{Block: 4096, Free: 100 * mib, Total: 100 << 30}, spaceNeed{Bytes: 100*mib - spaceReserveMax + 1, Inodes: 1}, false},
		{"a full one", fsSpace{Block: 4096, Total: 1024 * mib, TotalInodes: 10000}, spaceNeed{Bytes: 4096, Inodes: 1}, false},
	} {
		if got := c.fs.fits(c.need); got != c.want {
			t.Errorf("%s: fits(%+v) in %+v = %v, want %v", c.name, c.need, c.fs, got, c.want)
		}
	}
}

func TestNoSpaceError(t *testing.T) {
	t.Parallel()
	err := fmt.Errorf("job conf: %w", &NoSpaceError{Dir: "/var/lib/asterisk/sounds",
		Need: spaceNeed{Bytes: 300 << 20, Inodes: 1001, Files: 1000},
		Have: fsSpace{Block: 4096, Free: 200 << 20, Total: 1 << 30, FreeInodes: 5000, TotalInodes: 65536}})
	if !errors.Is(err, ErrNoSpace) || !isNoSpace(err) {
		t.Errorf("%v: not ErrNoSpace", err)
	}
	for _, want := range []string{"/var/lib/asterisk/sounds", "300.0 MiB and 1001 inodes (new files: 1000)", "200.0 MiB and 5000 inodes are free", "leaves 10.2 MiB and 655 inodes", "Nothing was written"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("%q does not say %q", err, want)
		}
	}
	for _, e := range []error{&os.PathError{Op: "write", Path: "x", Err: syscall.ENOSPC}, fmt.Errorf("stage: %w", syscall.EDQUOT)} {
		if !isNoSpace(e) {
			t.Errorf("%v: not taken for no space", e)
		}
	}
	if isNoSpace(&os.PathError{Op: "write", Path: "x", Err: syscall.EIO}) {
		t.Error("EIO taken for no space")
	}
}

func TestSpaceBackoff(t *testing.T) {
	t.Parallel()
	for fails, want := range map[int]time.Duration{1: 10 * time.Second, 2: 20 * time.Second, 3: 40 * time.Second, 6: 5 * time.Minute, 100: 5 * time.Minute} {
		if got := spaceBackoff(fails); got != want {
			t.Errorf("spaceBackoff(%d) = %v, want %v", fails, got, want)
		}
	}
}

func TestRoomAgain(t *testing.T) {
	t.Parallel()
	now := time.Unix(1_800_000_000, 0)
	need := &spaceNeed{Bytes: 10 << 20, Inodes: 10}
	room := fsSpace{Block: 4096, Free: 1 << 30, Total: 2 << 30, FreeInodes: 1000, TotalInodes: 10000}
	full := fsSpace{Block: 4096, Total: 2 << 30, TotalInodes: 10000}
	for _, c := range []struct {
		name     string
		need     *spaceNeed
		free     fsSpace
		readable bool
		until    time.Time
		want     bool
	}{
		{"the need fits", need, room, true, now.Add(time.Minute), true},
		{"it does not", need, full, true, now.Add(time.Minute), false},
		{"not readable: wait for the deadline", need, room, false, now.Add(time.Minute), false},
		{"the deadline passed", need, full, true, now, true},
		{"need not known: room says nothing", nil, room, true, now.Add(time.Second), false},
		{"need not known: the backoff passed", nil, full, true, now.Add(-time.Second), true},
		{"no deadline", need, full, true, time.Time{}, false},
	} {
		if got := roomAgain(c.need, c.free, c.readable, now, c.until); got != c.want {
			t.Errorf("%s: roomAgain = %v, want %v", c.name, got, c.want)
		}
	}
}

// TestApplyThatDoesNotFitWritesNothing: an apply whose new files do not fit
// on the file system fails before it stages a file, with a NoSpaceError
// that counts neither the reserve nor the files a fetch staged already.
func TestApplyThatDoesNotFitWritesNothing(t *testing.T) {
	t.Parallel()
	a := newApplier(t)
	ctx := context.Background()
	want := index.Of(index.Item{Path: "new", Kind: index.KindDir, Mode: 0o755})
	for i := range 3 {
		it := a.put(t, fmt.Sprintf("new/%d.conf", i), strings.Repeat(fmt.Sprint(i), 5000), 0o644)
		want.Set(it)
	}
	// the content of new/0.conf is staged already (a prefetch)
	f, _, name, err := a.createStaging(0o600)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteString(strings.Repeat("0", 5000)); err != nil {
		t.Fatal(err)
	}
	f.Close()
	pre, _ := want.Get("new/0.conf")
	a.prestage(pre.Hash, name, stagedMeta{})
	var free fsSpace
	a.statSpace = func(string) (fsSpace, bool) { return free, true }
	// two files of two blocks and a directory: 5 blocks, 3 inodes; the
	// reserve of a 100-block file system is one block
	free = fsSpace{Block: 4096, Free: 5 * 4096, Total: 100 * 4096, FreeInodes: 100, TotalInodes: 100}
	ops := Plan(index.Index{}, want)
	err = a.Apply(ctx, 1, ops, IndexLookup(want))
	var ns *NoSpaceError
	if !errors.As(err, &ns) {
		t.Fatalf("apply: %v, want a NoSpaceError", err)
	}
	if want := (spaceNeed{Bytes: 5 * 4096, Inodes: 3, Files: 2}); ns.Need != want {
		t.Errorf("need %+v, want %+v", ns.Need, want)
	}
	if want := (spaceNeed{Bytes: 7 * 4096, Inodes: 4, Files: 3}); ns.Full != want {
		t.Errorf("full need %+v, want %+v (the prestaged file counted too)", ns.Full, want)
	}
	entries, err := os.ReadDir(a.Staging)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 1 || filepath.Join(a.Staging, entries[0].Name()) != name {
		t.Errorf("staging holds %d entries, want only the prestaged file", len(entries))
	}
	if _, err := os.Lstat(filepath.Join(a.Root, "new")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the tree changed: %v", err)
	}
	// one block more: it fits, and the apply takes the prestaged file
	free.Free += 4096
	if err := a.Apply(ctx, 1, ops, IndexLookup(want)); err != nil {
		t.Fatal(err)
	}
	for p, it := range want.All() {
		if it.Kind == index.KindFile {
			if b, err := os.ReadFile(filepath.Join(a.Root, p)); err != nil || int64(len(b)) != it.Size {
				t.Errorf("%s: %d bytes, %v", p, len(b), err)
			}
		}
	}
}

func TestRoomToRestart(t *testing.T) {
	t.Parallel()
	const mib = 1 << 20
	room := fsSpace{Block: 4096, Free: 500 * mib, Total: 10 << 30, FreeInodes: 5000, TotalInodes: 100000}
	tight := fsSpace{Block: 4096, Free: restartRoom + 50*mib, Total: 10 << 30, FreeInodes: 5000, TotalInodes: 100000} // under restartRoom + the 64 MiB reserve
	noInodes := fsSpace{Block: 4096, Free: 500 * mib, Total: 10 << 30, FreeInodes: 999, TotalInodes: 100000}
	for _, c := range []struct {
		name  string
		frees []fsSpace
		want  bool
	}{
		{"both have room", []fsSpace{room, room}, true},
		{"data_dir is tight", []fsSpace{room, tight}, false},
		{"no inodes beside the reserve", []fsSpace{noInodes}, false},
		{"none readable: nothing to wait for", nil, true},
	} {
		if got := roomToRestart(c.frees); got != c.want {
			t.Errorf("%s: roomToRestart = %v, want %v", c.name, got, c.want)
		}
	}
}
