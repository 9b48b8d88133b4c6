package hostmon

import (
	"context"
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"

	"pbxsync/internal/index"
)

// TestSettled: the state of a file put in place as an item is trusted by
// the next scan (it reads nothing and records the item's hash) when its
// stat shows the item; another size or mtime (a write since) gives no
// state; an item made a moment before its put (a fresh edit) is trusted
// too, its mtime being before the change time the put stamped; an item
// whose mtime is after its change time (ahead of this host's clock)
// gives an untrusted state, which the scan reads.
func TestSettled(t *testing.T) {
	t.Parallel()
	root := t.TempDir()
	content := "[general]\nbindport=5060\n"
	old := time.Now().Add(-time.Hour).Truncate(time.Second)
	put := func(rel string, mtime time.Time) index.Item {
		writeFile(t, root, rel, content, 0o640)
		if err := os.Chtimes(filepath.Join(root, rel), mtime, mtime); err != nil {
			t.Fatal(err)
		}
		return index.Item{Path: rel, Kind: index.KindFile, Size: int64(len(content)), MTime: mtime.UnixNano(), Hash: index.Sum([]byte(content))}
	}
	stat := func(rel string) os.FileInfo {
		fi, err := os.Lstat(filepath.Join(root, rel))
		if err != nil {
			t.Fatal(err)
		}
		return fi
	}

	it := put("a.conf", old)
	st, ok := Settled(it, stat("a.conf"))
	if !ok || st.CTime == 0 || st.Hash != it.Hash || st.Mode != 0o640 || st.Inode == 0 {
		t.Fatalf("settled file: %+v, %v; want a trusted state with its hash", st, ok)
	}
	prev := map[string]FileState{"a.conf": st}

	// another size, or the mtime of a write since: no state
	wrong := it
	wrong.Size++
	if _, ok := Settled(wrong, stat("a.conf")); ok {
		t.Fatal("a file of another size was settled")
	}
	wrong = it
	wrong.MTime = old.Add(time.Second).UnixNano()
	if _, ok := Settled(wrong, stat("a.conf")); ok {
		t.Fatal("a file with another mtime was settled")
	}
	if _, ok := Settled(index.Item{Path: "d", Kind: index.KindFile, MTime: old.UnixNano()}, stat("")); ok {
		t.Fatal("a directory was settled")
	}

	// an item made 20 ms before its put (an edit applied at once):
	// trusted, a later write cannot be stamped with its mtime
	recent := put("c.conf", time.Now().Add(-20*time.Millisecond))
	st, ok = Settled(recent, stat("c.conf"))
	if !ok || st.CTime == 0 {
		t.Fatalf("file of a fresh edit: %+v, %v; want a trusted state", st, ok)
	}
	prev["c.conf"] = st

	// an item stamped after its put (the source's clock ahead): untrusted
	fresh := put("b.conf", time.Now().Add(time.Hour))
	st, ok = Settled(fresh, stat("b.conf"))
	if !ok || st.CTime != 0 {
		t.Fatalf("file stamped ahead: %+v, %v; want an untrusted state", st, ok)
	}
	prev["b.conf"] = st

	var read []string
	sink := func(r io.Reader) (index.Hash, int64, error) {
		read = append(read, "a file")
		return index.HashReader(r)
	}
	d, err := ScanTreeDelta(context.Background(), root, nil, []string{"a.conf", "b.conf", "c.conf"}, prev, nil, WithSink(sink))
	if err != nil {
		t.Fatal(err)
	}
	if len(read) != 1 {
		t.Errorf("the scan read %d files, want only the untrusted one", len(read))
	}
	if d.States["a.conf"].Hash != it.Hash || d.States["b.conf"].Hash != fresh.Hash || d.States["c.conf"].Hash != recent.Hash {
		t.Errorf("scan states %+v", d.States)
	}
}
