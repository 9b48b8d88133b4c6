package backup

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"pbxsync/internal/index"
)

// testArchive returns a manifest of files and the content it names.
func testArchive(t testing.TB) (*Manifest, map[string][]byte) {
	t.Helper()
	files := map[string][]byte{
		"extensions.conf": []byte("exten => 1,1,Answer()\n"),
		"sub/moh.wav":     bytes.Repeat([]byte{1, 2, 3, 250}, 5000),
		"empty.conf":      nil,
	}
	x := index.Of(index.Item{Path: "sub", Kind: index.KindDir, Mode: 0o755})
	for p, b := range files {
		x.Set(index.Item{Path: p, Kind: index.KindFile, Size: int64(len(b)), Mode: 0o640, MTime: 1_700_000_000_000_000_000, Hash: index.Sum(b)})
	}
	return &Manifest{Job: "conf", Type: "files", Node: "a", Generation: 7, Time: time.Unix(1_700_000_000, 0).UTC(), Items: FromIndex(x)}, files
}

func contentOf(files map[string][]byte) Content {
	return func(_ context.Context, path string, _ index.Hash) (io.ReadCloser, error) {
		b, ok := files[path]
		if !ok {
			return nil, fmt.Errorf("no %s", path)
		}
		return io.NopCloser(bytes.NewReader(b)), nil
	}
}

func writeTest(t testing.TB) ([]byte, *Manifest, map[string][]byte) {
	m, files := testArchive(t)
	var buf bytes.Buffer
	if err := Write(context.Background(), &buf, m, contentOf(files)); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes(), m, files
}

func TestRoundTrip(t *testing.T) {
	b, m, files := writeTest(t)
	got := map[string][]byte{}
	rm, err := Read(bytes.NewReader(b), nil, func(it Item, r io.Reader) error {
		c, err := io.ReadAll(r)
		got[it.Path] = c
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if rm.Job != "conf" || rm.Generation != 7 || len(rm.Items) != 4 {
		t.Fatalf("manifest %+v", rm)
	}
	for p, c := range files {
		if !bytes.Equal(got[p], c) {
			t.Errorf("%s: content differs", p)
		}
	}
	x, want := rm.Index(), m.Index()
	for p, it := range want.All() {
		got, _ := x.Get(p)
		if !got.SameContent(it) {
			t.Errorf("%s: %+v, want %+v", p, got, it)
		}
	}
}

// Every flipped byte of an archive is found: by zstd's frame checksum,
// tar's header checksums, the content hashes, the manifest's sum or the
// trailing hash of the compressed bytes (some flips in zstd's entropy
// tables decode to the same bytes: byte 489 of this archive did).
func TestDamagedByteIsRefused(t *testing.T) {
	b, _, _ := writeTest(t)
	step := max(1, len(b)/500)
	for i := 0; i < len(b); i += step {
		d := bytes.Clone(b)
		d[i] ^= 0x40
		if _, err := Read(bytes.NewReader(d), nil, nil); err == nil {
			t.Fatalf("byte %d of %d flipped: archive accepted", i, len(b))
		} else if !errors.Is(err, ErrDamaged) {
			t.Fatalf("byte %d flipped: error %v does not wrap ErrDamaged", i, err)
		}
	}
}

func TestTruncatedIsRefused(t *testing.T) {
	b, _, _ := writeTest(t)
	for _, n := range []int{0, 10, len(b) / 3, len(b) / 2, len(b) - 5, len(b) - 1} {
		if _, err := Read(bytes.NewReader(b[:n]), nil, nil); !errors.Is(err, ErrDamaged) {
			t.Errorf("cut at %d of %d: %v", n, len(b), err)
		}
	}
}

// An archive whose content does not match its manifest is refused, even
// when compression and tar are intact.
func TestWrongContentIsRefused(t *testing.T) {
	m, files := testArchive(t)
	var buf bytes.Buffer
	bad := contentOf(map[string][]byte{"extensions.conf": []byte("exten => 6,1,Dial(PJSIP/x)\n"), "sub/moh.wav": files["sub/moh.wav"], "empty.conf": nil})
	if err := Write(context.Background(), &buf, m, bad); err == nil || !strings.Contains(err.Error(), "changed while being read") {
		t.Fatalf("Write of content that is not the manifest's: %v", err)
	}
}

func TestCheckRefusesEarly(t *testing.T) {
	b, _, _ := writeTest(t)
	visited := 0
	_, err := Read(bytes.NewReader(b), func(m *Manifest) error { return fmt.Errorf("archive of job %s", m.Job) }, func(Item, io.Reader) error { visited++; return nil })
	if err == nil || visited != 0 {
		t.Fatalf("err %v, visited %d", err, visited)
	}
}

func TestWriteFileAtomic(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "b.tar.zst")
	m, files := testArchive(t)
	if err := WriteFile(context.Background(), path, m, contentOf(files)); err != nil {
		t.Fatal(err)
	}
	if _, err := ReadFile(path, nil, nil); err != nil {
		t.Fatal(err)
	}
	st, _ := os.Stat(path)
	if st.Mode().Perm() != 0o600 {
		t.Errorf("mode %v", st.Mode())
	}
	// a failing write leaves the old archive and no temporary file
	old, _ := os.ReadFile(path)
	failing := func(context.Context, string, index.Hash) (io.ReadCloser, error) { return nil, errors.New("disk gone") }
	if err := WriteFile(context.Background(), path, m, failing); err == nil {
		t.Fatal("WriteFile succeeded without content")
	}
	now, _ := os.ReadFile(path)
	ents, _ := os.ReadDir(dir)
	if !bytes.Equal(old, now) || len(ents) != 1 {
		t.Fatalf("a failed write changed the directory: %d entries", len(ents))
	}
}

func TestBadManifests(t *testing.T) {
	for name, edit := range map[string]func(m *Manifest){
		"escaping path":  func(m *Manifest) { m.Items[0].Path = "../etc/passwd" },
		"absolute path":  func(m *Manifest) { m.Items[0].Path = "/etc/passwd" },
		"unsorted":       func(m *Manifest) { m.Items[0], m.Items[1] = m.Items[1], m.Items[0] },
		"bad kind":       func(m *Manifest) { m.Items[0].Kind = "symlink" },
		"bad hash":       func(m *Manifest) { m.Items[0].Hash = "zz" },
		"negative size":  func(m *Manifest) { m.Items[0].Size = -1 },
		"setuid type":    func(m *Manifest) { m.Items[0].Mode |= 1 << 31 },
		"no job":         func(m *Manifest) { m.Job = "" },
		"postgres files": func(m *Manifest) { m.Type = "postgres" },
	} {
		m, _ := testArchive(t)
		edit(m)
		m.Format = Format
		if err := m.validate(); err == nil {
			t.Errorf("%s: manifest accepted", name)
		}
	}
}

func TestCompare(t *testing.T) {
	f := func(p, content string, mode uint32) index.Item {
		return index.Item{Path: p, Kind: index.KindFile, Size: int64(len(content)), Mode: fs.FileMode(mode), Hash: index.Sum([]byte(content))}
	}
	cur := index.Of(f("a", "1", 0o644), f("b", "2", 0o644), f("c", "3", 0o644), index.Item{Path: "d", Kind: index.KindDir, Mode: 0o755})
	want := index.Of(f("a", "1", 0o644), f("b", "two", 0o644), f("c", "3", 0o600), f("e", "", 0o644))
	add, change, del := Compare(cur, want)
	if fmt.Sprint(add, change, del) != "[e] [b c] [d]" {
		t.Fatalf("add %v change %v del %v", add, change, del)
	}
}
