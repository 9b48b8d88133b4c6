package hostmon

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"pbxsync/internal/index"
)

// stampedInfo is a file's stat with other stamps: what the stat of a file
// put in place within one timestamp tick shows.
type stampedInfo struct {
	fs.FileInfo
	st *syscall.Stat_t
}

func (s stampedInfo) ModTime() time.Time { return time.Unix(0, s.st.Mtim.Nano()) }
func (s stampedInfo) Sys() any           { return s.st }

// TestSettledSameTick: an item whose mtime is the very change time its
// put stamped (the source's write, the rename and a local write after it
// may all fall in one tick of the file system's clock, and then the local
// write keeps every stamp) is settled untrusted, so the next scan reads
// it; one whose mtime is a nanosecond before its change time is trusted.
func TestSettledSameTick(t *testing.T) {
	t.Parallel()
	root := t.TempDir()
	content := "[general]\nbindport=5060\n"
	writeFile(t, root, "a.conf", content, 0o640)
	fi, err := os.Lstat(filepath.Join(root, "a.conf"))
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		before  time.Duration // the mtime this long before the change time
		trusted bool
	}{{0, false}, {-time.Millisecond, false}, {time.Nanosecond, true}, {4 * time.Millisecond, true}} {
		st := *fi.Sys().(*syscall.Stat_t)
		st.Mtim = syscall.NsecToTimespec(st.Ctim.Nano() - c.before.Nanoseconds())
		info := stampedInfo{fi, &st}
		it := index.Item{Path: "a.conf", Kind: index.KindFile, Size: int64(len(content)), MTime: info.ModTime().UnixNano(), Hash: index.Sum([]byte(content))}
		got, ok := Settled(it, info)
		if !ok {
			t.Fatalf("mtime %v before the change time: not settled", c.before)
		}
		if (got.CTime != 0) != c.trusted {
			t.Errorf("mtime %v before the change time: settled with CTime %d, want trusted %v", c.before, got.CTime, c.trusted)
		}
	}
}

// TestLstatAt: LstatAt through a directory's descriptor shows what
// os.Lstat of the joined path does, does not follow a link at the name,
// and fails for an absent name naming its path.
func TestLstatAt(t *testing.T) {
	t.Parallel()
	root := t.TempDir()
	writeFile(t, root, "d/a.conf", "[general]\n", 0o640)
	if err := os.Symlink("a.conf", filepath.Join(root, "d", "link")); err != nil {
		t.Fatal(err)
	}
	dir, err := os.Open(filepath.Join(root, "d"))
	if err != nil {
		t.Fatal(err)
	}
	defer dir.Close()
	for _, name := range []string{"a.conf", "link"} {
		got, err := LstatAt(dir, name)
		if err != nil {
			t.Fatal(err)
		}
		want, err := os.Lstat(filepath.Join(root, "d", name))
		if err != nil {
			t.Fatal(err)
		}
		gdev, gino, gct := sysStat(got)
		wdev, wino, wct := sysStat(want)
		if got.Name() != name || got.Mode() != want.Mode() || got.Size() != want.Size() || !got.ModTime().Equal(want.ModTime()) || gdev != wdev || gino != wino || gct != wct {
			t.Errorf("%s: LstatAt %v %v %d %v ino %d, want %v %v %d %v ino %d", name, got.Name(), got.Mode(), got.Size(), got.ModTime(), gino, want.Name(), want.Mode(), want.Size(), want.ModTime(), wino)
		}
	}
	if _, err := LstatAt(dir, "gone.conf"); !errors.Is(err, fs.ErrNotExist) || !strings.Contains(err.Error(), filepath.Join(root, "d", "gone.conf")) {
		t.Errorf("an absent name: got %v, want not-exist naming its path", err)
	}
}
