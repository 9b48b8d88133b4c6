package hostmon

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"
)

// TestScanLeavesFilesOpenForWriting: with WithOpenForWriting a scan leaves
// a file open for writing at its last known state (a new one absent) and
// lists it in Busy; it reads one open file the caller names in readAnyway,
// one not written for writeSettle, and any once closed; without the
// option it reads them all.
func TestScanLeavesFilesOpenForWriting(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	root := t.TempDir()
	writeFile(t, root, "extensions.conf", "[old]\n", 0o644)
	writeFile(t, root, "daemon.db", "kept open\n", 0o644)
	writeFile(t, root, "forever.log", "written on\n", 0o644)
	prev, err := Scan(ctx, root, nil, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	open := func(rel string, flag int, content string) *os.File {
		f, err := os.OpenFile(filepath.Join(root, rel), os.O_WRONLY|flag, 0o644)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := f.WriteString(content); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { f.Close() })
		return f
	}
	dialplan := open("extensions.conf", os.O_TRUNC, "[ha")
	open("new.wav", os.O_CREATE, "RIFF")
	open("daemon.db", os.O_APPEND, "")
	old := time.Now().Add(-2 * writeSettle)
	if err := os.Chtimes(filepath.Join(root, "daemon.db"), old, old); err != nil {
		t.Fatal(err)
	}
	open("forever.log", os.O_APPEND, "more\n")

	d, err := ScanDelta(ctx, root, nil, []string{""}, StateMap(prev), nil, WithOpenForWriting(map[string]bool{"forever.log": true}))
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"extensions.conf", "new.wav"}; !slices.Equal(d.Busy, want) {
		t.Fatalf("busy %q, want %q", d.Busy, want)
	}
	if st, changed := d.States["extensions.conf"]; changed && st.Hash != prev["extensions.conf"].Hash {
		t.Fatal("the dialplan open for writing was read")
	}
	if _, ok := d.States["new.wav"]; ok {
		t.Fatal("the new file open for writing was recorded")
	}
	if st, ok := d.States["forever.log"]; !ok || st.Size != int64(len("written on\nmore\n")) {
		t.Fatalf("forever.log (read anyway) recorded as %+v, %v", st, ok)
	}

	without, err := ScanDelta(ctx, root, nil, []string{""}, StateMap(prev), nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(without.Busy) != 0 || without.States["new.wav"].Size != 4 {
		t.Fatalf("without the option: busy %q, new.wav %+v", without.Busy, without.States["new.wav"])
	}

	if _, err := dialplan.WriteString("lf]\n"); err != nil {
		t.Fatal(err)
	}
	dialplan.Close()
	d, err = ScanDelta(ctx, root, nil, []string{"extensions.conf"}, StateMap(prev), nil, WithOpenForWriting(nil))
	if err != nil {
		t.Fatal(err)
	}
	if len(d.Busy) != 0 || d.States["extensions.conf"].Size != int64(len("[half]\n")) {
		t.Fatalf("once closed: busy %q, extensions.conf %+v", d.Busy, d.States["extensions.conf"])
	}
}
