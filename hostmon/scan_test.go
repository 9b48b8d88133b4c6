package hostmon

import (
	"bytes"
	"context"
	"errors"
	"io/fs"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"pbxsync/internal/index"
)

// logBuf collects log output for assertions.
type logBuf struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *logBuf) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *logBuf) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func newTestLogger() (*slog.Logger, *logBuf) {
	b := &logBuf{}
	return slog.New(slog.NewTextHandler(b, &slog.HandlerOptions{Level: slog.LevelDebug})), b
}

func writeFile(t testing.TB, root, rel, content string, mode fs.FileMode) {
	t.Helper()
	p := filepath.Join(root, filepath.FromSlash(rel))
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(content), mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(p, mode); err != nil { // umask-independent
		t.Fatal(err)
	}
}

func mkdir(t testing.TB, root, rel string, mode fs.FileMode) {
	t.Helper()
	p := filepath.Join(root, filepath.FromSlash(rel))
	if err := os.MkdirAll(p, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(p, mode); err != nil {
		t.Fatal(err)
	}
}

func keys(m map[string]FileState) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func scan(t testing.TB, root string, f *Filter, prev map[string]FileState) map[string]FileState {
	t.Helper()
	m, err := Scan(context.Background(), root, f, prev, nil)
	if err != nil {
		t.Fatalf("Scan: %v", err)
	}
	return m
}

func checkKeys(t *testing.T, m map[string]FileState, want ...string) {
	t.Helper()
	sort.Strings(want)
	if got := keys(m); !reflect.DeepEqual(got, want) {
		t.Fatalf("paths:\n got %q\nwant %q", got, want)
	}
}

// waitUntrusted sleeps until files changed now are old enough to be
// trusted by a scan (see racyWindow). This is set-up, not an assertion.
func waitUntrusted() { time.Sleep(racyWindow + 50*time.Millisecond) }

var fakeHash = index.Sum([]byte("not the content"))

// withFakeHashes returns a copy of m in which every file carries fakeHash.
func withFakeHashes(m map[string]FileState) map[string]FileState {
	out := maps.Clone(m)
	for p, st := range out {
		if st.Kind == index.KindFile {
			st.Hash = fakeHash
			out[p] = st
		}
	}
	return out
}

func TestScanTree(t *testing.T) {
	root := t.TempDir()
	writeFile(t, root, "extensions.conf", "[default]\nexten => 100,1,Answer()\n", 0o640)
	writeFile(t, root, "sub/pjsip.conf", "[transport-udp]\n", 0o600)
	writeFile(t, root, "sub/deep/empty.conf", "", 0o644)
	mkdir(t, root, "emptydir", 0o750)
	writeFile(t, root, "astdb.sqlite3", "db", 0o644)
	writeFile(t, root, ".pbxsync-stage/x.conf", "staged", 0o644)
	writeFile(t, root, "sub/.pjsip.conf.swp", "swap", 0o644)
	if err := os.Symlink("extensions.conf", filepath.Join(root, "link.conf")); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mkfifo(filepath.Join(root, "sub", "fifo"), 0o644); err != nil {
		t.Fatal(err)
	}
	log, logs := newTestLogger()

	m, err := Scan(context.Background(), root, nil, nil, log)
	if err != nil {
		t.Fatal(err)
	}
	checkKeys(t, m, "emptydir", "extensions.conf", "sub", "sub/deep", "sub/deep/empty.conf", "sub/pjsip.conf")

	for _, tt := range []struct {
		rel     string
		kind    index.Kind
		content string
		mode    fs.FileMode
	}{
		{"extensions.conf", index.KindFile, "[default]\nexten => 100,1,Answer()\n", 0o640},
		{"sub/pjsip.conf", index.KindFile, "[transport-udp]\n", 0o600},
		{"sub/deep/empty.conf", index.KindFile, "", 0o644},
		{"emptydir", index.KindDir, "", 0o750},
		{"sub", index.KindDir, "", 0o755},
	} {
		st := m[tt.rel]
		fi, err := os.Lstat(filepath.Join(root, tt.rel))
		if err != nil {
			t.Fatal(err)
		}
		if st.Path != tt.rel || st.Kind != tt.kind || st.Mode != tt.mode || st.MTime != fi.ModTime().UnixNano() || st.Deleted {
			t.Errorf("%s: got path %q kind %v mode %v mtime %d deleted %v; want %q %v %v %d false",
				tt.rel, st.Path, st.Kind, st.Mode, st.MTime, st.Deleted, tt.rel, tt.kind, tt.mode, fi.ModTime().UnixNano())
		}
		dev, ino, _ := sysStat(fi)
		if st.Dev != dev || st.Inode != ino || ino == 0 {
			t.Errorf("%s: dev/inode %d/%d, want %d/%d", tt.rel, st.Dev, st.Inode, dev, ino)
		}
		if tt.kind == index.KindFile {
			if st.Hash != index.Sum([]byte(tt.content)) || st.Size != int64(len(tt.content)) {
				t.Errorf("%s: hash %s size %d, want %s %d", tt.rel, st.Hash.Short(), st.Size, index.Sum([]byte(tt.content)).Short(), len(tt.content))
			}
		} else if !st.Hash.IsZero() || st.Size != 0 {
			t.Errorf("%s: directory with hash %s size %d", tt.rel, st.Hash.Short(), st.Size)
		}
	}

	out := logs.String()
	for _, want := range []string{"path=link.conf reason=symlink", "path=sub/fifo"} {
		if !strings.Contains(out, want) {
			t.Errorf("log does not report %q:\n%s", want, out)
		}
	}
	for _, never := range []string{"astdb", ".pbxsync", ".swp"} {
		if strings.Contains(out, never) {
			t.Errorf("log mentions excluded %q:\n%s", never, out)
		}
	}

	x := ToIndex(m)
	if x.Len() != len(m) {
		t.Fatalf("ToIndex: %d items, want %d", x.Len(), len(m))
	}
	for p, st := range m {
		if got, ok := x.Get(p); !ok || !reflect.DeepEqual(got, st.Item) {
			t.Errorf("ToIndex[%s] = %+v, %v, want %+v", p, got, ok, st.Item)
		}
	}
}

func TestScanTrustsPrevAndDetectsChanges(t *testing.T) {
	root := t.TempDir()
	files := map[string]string{
		"same.conf":     "unchanged",
		"inplace.conf":  "aaaa",
		"touched.conf":  "touched",
		"chmod.conf":    "chmod",
		"deleted.conf":  "deleted",
		"replaced.conf": "rrrr",
		"dir/keep.conf": "keep",
	}
	for rel, c := range files {
		writeFile(t, root, rel, c, 0o644)
	}
	waitUntrusted()
	base := scan(t, root, nil, nil)
	for rel, c := range files {
		st := base[rel]
		if st.CTime == 0 {
			t.Fatalf("%s: recorded untrusted although unchanged for %v", rel, racyWindow)
		}
		if st.Hash != index.Sum([]byte(c)) {
			t.Fatalf("%s: wrong hash", rel)
		}
	}

	// Nothing changed: every fake hash is kept, proving no file was read.
	prev := withFakeHashes(base)
	again := scan(t, root, nil, prev)
	if !reflect.DeepEqual(again, prev) {
		t.Fatalf("unchanged tree: scan with prev differs from prev")
	}

	// Now change things, with prev carrying fake hashes: a rehashed file
	// shows its real hash.
	abs := func(rel string) string { return filepath.Join(root, rel) }
	origM := base["inplace.conf"].MTime
	// Same size, mtime put back: only ctime tells.
	if err := os.WriteFile(abs("inplace.conf"), []byte("bbbb"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Chtimes(abs("inplace.conf"), time.Time{}, time.Unix(0, origM)); err != nil {
		t.Fatal(err)
	}
	// Only the mtime changes.
	newM := time.Unix(0, base["touched.conf"].MTime).Add(-time.Hour)
	if err := os.Chtimes(abs("touched.conf"), time.Time{}, newM); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(abs("chmod.conf"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(abs("deleted.conf")); err != nil {
		t.Fatal(err)
	}
	writeFile(t, root, "dir/created.conf", "created", 0o644)
	// A new inode with the same size and mtime.
	writeFile(t, root, "replacement", "ssss", 0o644)
	if err := os.Chtimes(abs("replacement"), time.Time{}, time.Unix(0, base["replaced.conf"].MTime)); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(abs("replacement"), abs("replaced.conf")); err != nil {
		t.Fatal(err)
	}

	m := scan(t, root, nil, prev)
	checkKeys(t, m, "same.conf", "inplace.conf", "touched.conf", "chmod.conf", "replaced.conf", "dir", "dir/keep.conf", "dir/created.conf")
	for rel, want := range map[string]index.Hash{
		"same.conf":        fakeHash, // trusted
		"dir/keep.conf":    fakeHash, // trusted
		"inplace.conf":     index.Sum([]byte("bbbb")),
		"touched.conf":     index.Sum([]byte("touched")),
		"chmod.conf":       index.Sum([]byte("chmod")),
		"replaced.conf":    index.Sum([]byte("ssss")),
		"dir/created.conf": index.Sum([]byte("created")),
	} {
		if got := m[rel].Hash; got != want {
			t.Errorf("%s: hash %s, want %s", rel, got.Short(), want.Short())
		}
	}
	if m["touched.conf"].MTime != newM.UnixNano() {
		t.Errorf("touched.conf: mtime %d, want %d", m["touched.conf"].MTime, newM.UnixNano())
	}
	if m["chmod.conf"].Mode != 0o600 {
		t.Errorf("chmod.conf: mode %v, want 0600", m["chmod.conf"].Mode)
	}
	if m["replaced.conf"].Inode == base["replaced.conf"].Inode {
		t.Errorf("replaced.conf: inode not updated")
	}
}

func TestScanRacyFileIsNotTrusted(t *testing.T) {
	root := t.TempDir()
	writeFile(t, root, "fresh.conf", "fresh", 0o644)
	m := scan(t, root, nil, nil)
	st := m["fresh.conf"]
	if st.CTime != 0 {
		t.Fatalf("a file hashed right after it changed is recorded trusted (CTime %d)", st.CTime)
	}
	if st.Hash != index.Sum([]byte("fresh")) {
		t.Fatal("wrong hash")
	}
	// Even with the very same stat, the fake hash is replaced.
	m2 := scan(t, root, nil, withFakeHashes(m))
	if m2["fresh.conf"].Hash != index.Sum([]byte("fresh")) {
		t.Fatal("untrusted state was trusted")
	}
}

func TestScanCarriesVersion(t *testing.T) {
	root := t.TempDir()
	writeFile(t, root, "a.conf", "a", 0o644)
	mkdir(t, root, "d", 0o755)
	prev := scan(t, root, nil, nil)
	v := index.Vector(nil).Bump("node-a").Bump("node-b")
	for _, p := range []string{"a.conf", "d"} {
		st := prev[p]
		st.Version = v
		prev[p] = st
	}
	writeFile(t, root, "a.conf", "changed", 0o644)
	m := scan(t, root, nil, prev)
	for _, p := range []string{"a.conf", "d"} {
		if !reflect.DeepEqual(m[p].Version, v) {
			t.Errorf("%s: version %v, want %v", p, m[p].Version, v)
		}
	}
}

func TestScanFilterPrunes(t *testing.T) {
	root := t.TempDir()
	writeFile(t, root, "sip.conf", "sip", 0o644)
	writeFile(t, root, "notes.txt", "notes", 0o644)
	writeFile(t, root, "sounds/en/hello.gsm", "gsm", 0o644)
	writeFile(t, root, "sounds/en/local.conf", "c", 0o644)
	writeFile(t, root, "skipme/a.conf", "a", 0o644)
	// Probes: if the walker entered skipme it would log these.
	if err := syscall.Mkfifo(filepath.Join(root, "skipme", "probe-fifo"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("/etc/passwd", filepath.Join(root, "skipme", "probe-link")); err != nil {
		t.Fatal(err)
	}

	f, err := NewFilter([]string{"*.conf"}, []string{"skipme"})
	if err != nil {
		t.Fatal(err)
	}
	log, logs := newTestLogger()
	m, err := Scan(context.Background(), root, f, nil, log)
	if err != nil {
		t.Fatal(err)
	}
	checkKeys(t, m, "sip.conf", "sounds", "sounds/en", "sounds/en/local.conf")
	if strings.Contains(logs.String(), "probe") {
		t.Errorf("walker entered the excluded directory:\n%s", logs)
	}

	// The probes do work: without the exclusion they are reported.
	f, err = NewFilter(nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	log, logs = newTestLogger()
	if _, err := Scan(context.Background(), root, f, nil, log); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(logs.String(), "skipme/probe-fifo") || !strings.Contains(logs.String(), "skipme/probe-link") {
		t.Errorf("probes not reported without exclusion:\n%s", logs)
	}
}

func TestScanErrors(t *testing.T) {
	root := t.TempDir()
	writeFile(t, root, "a.conf", "a", 0o644)

	if _, err := Scan(context.Background(), filepath.Join(root, "missing"), nil, nil, nil); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("missing root: %v", err)
	}
	_, err := Scan(context.Background(), filepath.Join(root, "a.conf"), nil, nil, nil)
	if err == nil || !strings.Contains(err.Error(), "a.conf: not a directory") {
		t.Errorf("root is a file: %v", err)
	}

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := Scan(ctx, root, nil, nil, nil); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled scan: %v", err)
	}
	if _, err := ScanPaths(ctx, root, nil, []string{"a.conf"}, nil, nil); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled ScanPaths: %v", err)
	}

	if _, err := ScanPaths(context.Background(), root, nil, []string{"../etc/passwd"}, nil, nil); !errors.Is(err, index.ErrBadPath) {
		t.Errorf("ScanPaths with an escaping path: %v", err)
	}
}

func TestScanUnreadableKeepsLastKnownState(t *testing.T) {
	root := t.TempDir()
	writeFile(t, root, "extensions.conf", "x", 0o644)
	writeFile(t, root, "secret.conf", "old", 0o600)
	writeFile(t, root, "locked/a.conf", "a", 0o644)
	writeFile(t, root, "locked/b/c.conf", "c", 0o644)
	prev := scan(t, root, nil, nil)
	writeFile(t, root, "secret.conf", "new content", 0o000)
	writeFile(t, root, "fresh.conf", "never read", 0o000)
	s, err := newScanner(context.Background(), root, nil, StateMap(prev), nil)
	if err != nil {
		t.Fatal(err)
	}
	// Tests run as root, who reads a mode-0000 file: refuse it as the
	// kernel would refuse the agent's user.
	s.openFile = func(d scanDir, rel, name string) (scanFile, error) {
		if name == "secret.conf" || name == "fresh.conf" {
			return nil, &fs.PathError{Op: "open", Path: rel, Err: fs.ErrPermission}
		}
		return d.open(name)
	}
	s.openDir = func(rel string) (scanDir, error) {
		if filepath.Base(rel) == "locked" {
			return nil, &fs.PathError{Op: "open", Path: rel, Err: fs.ErrPermission}
		}
		return openScanDir(root, rel)
	}
	s.out = map[string]FileState{}
	if err := s.walk(""); err != nil {
		t.Fatalf("walk: %v (an unreadable entry must be reported, not end the scan)", err)
	}
	for _, p := range []string{"secret.conf", "fresh.conf", "locked"} {
		if !strings.Contains(s.unreadable[p], "permission denied") {
			t.Errorf("unreadable[%q] = %q, want permission denied; all: %v", p, s.unreadable[p], s.unreadable)
		}
	}
	if len(s.unreadable) != 3 {
		t.Errorf("unreadable = %v, want exactly 3 entries", s.unreadable)
	}
	// an omission would read as a deletion: the last known state stays
	for _, p := range []string{"secret.conf", "locked/a.conf", "locked/b", "locked/b/c.conf"} {
		if !reflect.DeepEqual(s.out[p], prev[p]) {
			t.Errorf("%s: %+v, want its last known state %+v", p, s.out[p], prev[p])
		}
	}
	if _, ok := s.out["fresh.conf"]; ok {
		t.Error("an unreadable file never read before has a state")
	}
	if s.out["locked"].Kind != index.KindDir || s.out["extensions.conf"].Hash != index.Sum([]byte("x")) {
		t.Errorf("readable entries: %+v %+v", s.out["locked"], s.out["extensions.conf"])
	}
	e := &UnreadableError{Root: root, Paths: s.unreadable}
	if !errors.Is(e, fs.ErrPermission) || !strings.Contains(e.Error(), "secret.conf") {
		t.Errorf("UnreadableError %q does not name the file or wrap ErrPermission", e)
	}
}

func TestScanPaths(t *testing.T) {
	root := t.TempDir()
	writeFile(t, root, "extensions.conf", "ext", 0o644)
	writeFile(t, root, "a/one.conf", "one", 0o644)
	writeFile(t, root, "a/two.conf", "two", 0o644)
	writeFile(t, root, "gone/x/y.conf", "y", 0o644)
	writeFile(t, root, "becomesfile/z.conf", "z", 0o644)
	writeFile(t, root, "tmp/scratch", "s", 0o644)
	mkdir(t, root, "chmoddir", 0o755)
	f, err := NewFilter(nil, []string{"tmp"})
	if err != nil {
		t.Fatal(err)
	}
	prev := scan(t, root, f, nil)
	snapshot := maps.Clone(prev)

	abs := func(rel string) string { return filepath.Join(root, rel) }
	writeFile(t, root, "a/three.conf", "three", 0o644)        // new file in a known dir
	writeFile(t, root, "a/one.conf", "ONE!", 0o644)           // modified
	writeFile(t, root, "newdir/sub/deep.conf", "deep", 0o644) // new subtree
	writeFile(t, root, "tmp/more", "m", 0o644)                // excluded
	if err := os.RemoveAll(abs("gone")); err != nil {         // deleted subtree
		t.Fatal(err)
	}
	if err := os.Chmod(abs("chmoddir"), 0o700); err != nil { // dir mode
		t.Fatal(err)
	}
	if err := os.RemoveAll(abs("becomesfile")); err != nil {
		t.Fatal(err)
	}
	writeFile(t, root, "becomesfile", "now a file", 0o644)

	changed := []string{"a/three.conf", "a/one.conf", "newdir", "tmp/more", "gone/x/y.conf", "gone/x", "gone", "chmoddir", "becomesfile", "becomesfile/z.conf"}
	log, logs := newTestLogger()
	got, err := ScanPaths(context.Background(), root, f, changed, prev, log)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(prev, snapshot) {
		t.Fatal("ScanPaths modified prev")
	}
	want := scan(t, root, f, prev)
	if !reflect.DeepEqual(got, want) {
		t.Errorf("ScanPaths differs from a full scan:\n got %q\nwant %q", keys(got), keys(want))
		for p, st := range want {
			if !reflect.DeepEqual(got[p], st) {
				t.Errorf("%s:\n got %+v\nwant %+v", p, got[p], st)
			}
		}
	}
	checkKeys(t, got, "extensions.conf", "a", "a/one.conf", "a/two.conf", "a/three.conf",
		"newdir", "newdir/sub", "newdir/sub/deep.conf", "chmoddir", "becomesfile")
	if got["a/one.conf"].Hash != index.Sum([]byte("ONE!")) {
		t.Error("a/one.conf not rehashed")
	}
	if got["chmoddir"].Mode != 0o700 {
		t.Errorf("chmoddir mode %v", got["chmoddir"].Mode)
	}
	if got["becomesfile"].Kind != index.KindFile {
		t.Error("becomesfile is not a file")
	}
	if logs.String() != "" {
		t.Errorf("unexpected log: %s", logs)
	}

	// Only the parent reported: a stale parent is re-scanned too.
	writeFile(t, root, "p/q/r.conf", "r", 0o644)
	prev2 := scan(t, root, f, nil)
	if err := os.RemoveAll(abs("p")); err != nil {
		t.Fatal(err)
	}
	writeFile(t, root, "p", "file now", 0o644)
	got2, err := ScanPaths(context.Background(), root, f, []string{"p/q/r.conf"}, prev2, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := got2["p/q"]; ok || got2["p"].Kind != index.KindFile {
		t.Errorf("stale parent kept: p=%+v, p/q present %v", got2["p"], ok)
	}

	// "" means everything.
	all, err := ScanPaths(context.Background(), root, f, []string{""}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(keys(all), keys(scan(t, root, f, nil))) {
		t.Error(`ScanPaths("") is not a full scan`)
	}
}

func TestScanPathsDoesNotFollowSymlinkedDirs(t *testing.T) {
	root := t.TempDir()
	outside := t.TempDir()
	writeFile(t, outside, "secret.conf", "secret", 0o644)
	writeFile(t, root, "a.conf", "a", 0o644)
	if err := os.Symlink(outside, filepath.Join(root, "ln")); err != nil {
		t.Fatal(err)
	}
	prev := scan(t, root, nil, nil)
	checkKeys(t, prev, "a.conf")
	log, logs := newTestLogger()
	got, err := ScanPaths(context.Background(), root, nil, []string{"ln/secret.conf"}, prev, log)
	if err != nil {
		t.Fatal(err)
	}
	checkKeys(t, got, "a.conf")
	if !strings.Contains(logs.String(), "path=ln reason=symlink") {
		t.Errorf("symlinked parent not reported: %s", logs)
	}
}
