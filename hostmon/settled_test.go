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
// state; an item whose mtime is recent gives an untrusted one, which the
// scan reads.
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

	// an item made just now: untrusted
	fresh := put("b.conf", time.Now())
	st, ok = Settled(fresh, stat("b.conf"))
	if !ok || st.CTime != 0 {
		t.Fatalf("fresh file: %+v, %v; want an untrusted state", st, ok)
	}
	prev["b.conf"] = st

	var read []string
	sink := func(r io.Reader) (index.Hash, int64, error) {
		read = append(read, "a file")
		return index.HashReader(r)
	}
	d, err := ScanTreeDelta(context.Background(), root, nil, []string{"a.conf", "b.conf"}, prev, nil, WithSink(sink))
	if err != nil {
		t.Fatal(err)
	}
	if len(read) != 1 {
		t.Errorf("the scan read %d files, want only the untrusted one", len(read))
	}
	if d.States["a.conf"].Hash != it.Hash || d.States["b.conf"].Hash != fresh.Hash {
		t.Errorf("scan states %+v", d.States)
	}
}
