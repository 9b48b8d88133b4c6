package backup

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/klauspost/compress/zstd"

	"pbxsync/internal/index"
)

// Format is the manifest format this package writes and reads.
const Format = 1

// Names of the archive's entries.
const (
	ManifestName = "pbxsync-backup.json"
	SumName      = "pbxsync-backup.sum"
	dataPrefix   = "data/"
	// RowsItem is the one item of a postgres job's archive.
	RowsItem = "rows.jsonl"
)

// Limits on what Read accepts.
const (
	MaxManifest = 256 << 20 // bytes of the manifest
	MaxItems    = 4 << 20   // items of one archive
	maxSum      = 256
	// maxWindow bounds the memory the zstd decoder may use.
	maxWindow = 64 << 20
)

// ErrDamaged is wrapped by every error Read returns for an archive that is
// damaged, truncated or not a pbxsync backup.
var ErrDamaged = errors.New("damaged backup archive")

// Manifest describes the content of an archive.
type Manifest struct {
	Format     int       `json:"format"`
	Job        string    `json:"job"`
	Type       string    `json:"type"` // "files" or "postgres"
	Node       string    `json:"node"` // the node that wrote it
	Generation uint64    `json:"generation"`
	Origin     string    `json:"origin,omitempty"` // where the generation came from
	Time       time.Time `json:"time"`             // when the generation was recorded
	Written    time.Time `json:"written"`          // when the archive was written
	Items      []Item    `json:"items"`            // sorted by path
}

// Item is one file or directory of an archive.
type Item struct {
	Path  string      `json:"path"`
	Kind  string      `json:"kind"` // "file" or "dir"
	Size  int64       `json:"size,omitempty"`
	Mode  fs.FileMode `json:"mode"`
	MTime int64       `json:"mtime,omitempty"` // Unix nanoseconds
	Hash  string      `json:"hash,omitempty"`  // BLAKE3-256, hex; files only
}

// FromIndex returns the items of x as a manifest lists them.
func FromIndex(x index.Index) []Item {
	out := make([]Item, 0, x.Len())
	for _, it := range x.Sorted() {
		m := Item{Path: it.Path, Kind: it.Kind.String(), Mode: it.Mode, MTime: it.MTime}
		if it.Kind == index.KindFile {
			m.Size, m.Hash = it.Size, it.Hash.String()
		}
		out = append(out, m)
	}
	return out
}

// Index returns the items of m as an index (Read has validated them).
func (m *Manifest) Index() index.Index {
	x := index.New(len(m.Items))
	for _, it := range m.Items {
		ix := index.Item{Path: it.Path, Mode: it.Mode, MTime: it.MTime, Kind: index.KindDir}
		if it.Kind == "file" {
			ix.Kind, ix.Size = index.KindFile, it.Size
			ix.Hash, _ = index.ParseHash(it.Hash)
		}
		x.Set(ix)
	}
	return x
}

// Files returns the number of file items and their total size.
func (m *Manifest) Files() (n int, size int64) {
	for _, it := range m.Items {
		if it.Kind == "file" {
			n++
			size += it.Size
		}
	}
	return n, size
}

// validate checks a manifest read from an archive.
func (m *Manifest) validate() error {
	if m.Format != Format {
		return fmt.Errorf("manifest format %d, this pbxsync reads %d", m.Format, Format)
	}
	if m.Job == "" || (m.Type != "files" && m.Type != "postgres") {
		return fmt.Errorf("manifest: job %q of type %q", m.Job, m.Type)
	}
	if len(m.Items) > MaxItems {
		return fmt.Errorf("manifest: %d items, at most %d", len(m.Items), MaxItems)
	}
	prev := ""
	for i, it := range m.Items {
		if err := index.ValidateName(it.Path); err != nil {
			return fmt.Errorf("manifest item %d: %w", i, err)
		}
		if i > 0 && it.Path <= prev {
			return fmt.Errorf("manifest item %q: items not sorted or repeated", it.Path)
		}
		prev = it.Path
		if it.Mode&^(fs.ModePerm|fs.ModeSetuid|fs.ModeSetgid|fs.ModeSticky) != 0 {
			return fmt.Errorf("manifest item %q: mode %v is not permission bits", it.Path, it.Mode)
		}
		switch it.Kind {
		case "file":
			if it.Size < 0 {
				return fmt.Errorf("manifest item %q: size %d", it.Path, it.Size)
			}
			if _, err := index.ParseHash(it.Hash); err != nil {
				return fmt.Errorf("manifest item %q: %w", it.Path, err)
			}
		case "dir":
			if it.Size != 0 || it.Hash != "" {
				return fmt.Errorf("manifest item %q: a directory with content", it.Path)
			}
		default:
			return fmt.Errorf("manifest item %q: kind %q", it.Path, it.Kind)
		}
	}
	if m.Type == "postgres" && (len(m.Items) != 1 || m.Items[0].Path != RowsItem || m.Items[0].Kind != "file") {
		return fmt.Errorf("manifest: a postgres archive holds exactly one item %q", RowsItem)
	}
	return nil
}

// Content opens the content of the file item with hash h at path.
type Content func(ctx context.Context, path string, h index.Hash) (io.ReadCloser, error)

// Write writes an archive of m to w, reading each file's content from
// content. It checks what it writes against m's hashes and sizes: content
// that changed since m was made is an error, not a damaged archive.
func Write(ctx context.Context, w io.Writer, m *Manifest, content Content) error {
	m.Format = Format
	if err := m.validate(); err != nil {
		return fmt.Errorf("write backup: %w", err)
	}
	mb, err := json.MarshalIndent(m, "", " ")
	if err != nil {
		return fmt.Errorf("write backup: manifest: %w", err)
	}
	sw := &hashingWriter{w: w, h: index.NewHasher()}
	zw, err := zstd.NewWriter(sw, zstd.WithEncoderLevel(zstd.SpeedDefault), zstd.WithEncoderCRC(true))
	if err != nil {
		return fmt.Errorf("write backup: %w", err)
	}
	tw := tar.NewWriter(zw)
	now := time.Now()
	put := func(name string, size int64, r io.Reader, mode int64, mtime time.Time) error {
		if err := tw.WriteHeader(&tar.Header{Name: name, Size: size, Mode: mode, ModTime: mtime, Typeflag: tar.TypeReg, Format: tar.FormatPAX}); err != nil {
			return err
		}
		_, err := io.Copy(tw, r)
		return err
	}
	if err := put(ManifestName, int64(len(mb)), bytes.NewReader(mb), 0o600, now); err != nil {
		return fmt.Errorf("write backup: manifest: %w", err)
	}
	for _, it := range m.Items {
		if it.Kind != "file" {
			continue
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		h, _ := index.ParseHash(it.Hash)
		rc, err := content(ctx, it.Path, h)
		if err != nil {
			return fmt.Errorf("write backup: %s: %w", it.Path, err)
		}
		hr := &hashingReader{r: io.LimitReader(rc, it.Size), h: index.NewHasher()}
		err = put(dataPrefix+it.Path, it.Size, hr, int64(it.Mode.Perm()), time.Unix(0, it.MTime))
		var more [1]byte
		extra, _ := io.ReadFull(rc, more[:])
		rc.Close()
		if errors.Is(err, tar.ErrWriteTooLong) || err == nil && (extra > 0 || hr.n != it.Size || hr.h.Sum() != h) {
			err = fmt.Errorf("content is not the generation's (%d bytes, want %d): it changed while being read", hr.n, it.Size)
		}
		if err != nil {
			return fmt.Errorf("write backup: %s: %w", it.Path, err)
		}
	}
	sum := index.Sum(mb).String()
	if err := put(SumName, int64(len(sum)), strings.NewReader(sum), 0o600, now); err != nil {
		return fmt.Errorf("write backup: %w", err)
	}
	if err := tw.Close(); err != nil {
		return fmt.Errorf("write backup: %w", err)
	}
	if err := zw.Close(); err != nil {
		return fmt.Errorf("write backup: %w", err)
	}
	if _, err := w.Write(trailer(sw.h.Sum())); err != nil {
		return fmt.Errorf("write backup: %w", err)
	}
	return nil
}

// The archive ends with a zstd skippable frame (which zstd and tar skip)
// holding the BLAKE3 hash of every byte before it: zstd's checksum covers
// the decompressed bytes only, and some changes to compressed bytes (in
// entropy tables) decode to the same bytes; a backup that differs from
// what was written by one byte is still refused.
const (
	trailerMagic = 0x184D2A5B
	trailerLen   = 8 + index.HashSize
)

func trailer(h index.Hash) []byte {
	b := binary.LittleEndian.AppendUint32(nil, trailerMagic)
	b = binary.LittleEndian.AppendUint32(b, index.HashSize)
	return append(b, h[:]...)
}

// hashingWriter hashes what is written through it.
type hashingWriter struct {
	w io.Writer
	h *index.Hasher
}

func (h *hashingWriter) Write(p []byte) (int, error) {
	n, err := h.w.Write(p)
	h.h.Write(p[:n])
	return n, err
}

// holdBack passes on all but the last trailerLen bytes of r, hashing
// them; tail holds the last trailerLen bytes once r is at EOF.
type holdBack struct {
	r    io.Reader
	h    *index.Hasher
	buf  []byte // bytes read from r, not yet passed on
	eof  bool
	tail []byte
}

func (b *holdBack) Read(p []byte) (int, error) {
	for len(b.buf) <= trailerLen && !b.eof {
		chunk := make([]byte, 32<<10)
		n, err := b.r.Read(chunk)
		b.buf = append(b.buf, chunk[:n]...)
		if err == io.EOF {
			b.eof = true
		} else if err != nil {
			return 0, err
		}
	}
	avail := len(b.buf) - trailerLen
	if avail <= 0 {
		b.tail = b.buf
		return 0, io.EOF
	}
	n := copy(p, b.buf[:avail])
	b.h.Write(b.buf[:n])
	b.buf = b.buf[n:]
	if len(b.buf) == 0 {
		b.buf = nil
	}
	return n, nil
}

// hashingReader hashes and counts what is read through it.
type hashingReader struct {
	r io.Reader
	h *index.Hasher
	n int64
}

func (h *hashingReader) Read(p []byte) (int, error) {
	n, err := h.r.Read(p)
	h.h.Write(p[:n])
	h.n += int64(n)
	return n, err
}

// Visit is called by Read for each file item with a reader of its
// content. The content is verified only when the whole archive has been
// read: a visitor keeps what it reads provisional until Read returns nil.
type Visit func(it Item, content io.Reader) error

// Read reads and verifies an archive. It calls check (if not nil) with
// the manifest before reading any content, so that a caller can refuse an
// archive of another job early, and visit (if not nil) for each file item.
// It returns the manifest when everything verified.
func Read(r io.Reader, check func(*Manifest) error, visit Visit) (*Manifest, error) {
	damaged := func(format string, a ...any) error {
		return fmt.Errorf("%w: %s", ErrDamaged, fmt.Sprintf(format, a...))
	}
	hb := &holdBack{r: r, h: index.NewHasher()}
	zr, err := zstd.NewReader(hb, zstd.WithDecoderConcurrency(1), zstd.WithDecoderMaxWindow(maxWindow))
	if err != nil {
		return nil, damaged("%v", err)
	}
	defer zr.Close()
	tr := tar.NewReader(zr)
	next := func(want string) (*tar.Header, error) {
		h, err := tr.Next()
		if err == io.EOF {
			return nil, damaged("ends before %s", want)
		}
		if err != nil {
			return nil, damaged("reading %s: %v", want, err)
		}
		if h.Typeflag != tar.TypeReg || h.Size < 0 {
			return nil, damaged("entry %q: not a regular file where %s belongs", h.Name, want)
		}
		return h, nil
	}
	h, err := next(ManifestName)
	if err != nil {
		return nil, err
	}
	if h.Name != ManifestName {
		return nil, damaged("first entry is %q, not %s: not a pbxsync backup", h.Name, ManifestName)
	}
	if h.Size > MaxManifest {
		return nil, damaged("manifest of %d bytes, at most %d", h.Size, MaxManifest)
	}
	mb, err := io.ReadAll(io.LimitReader(tr, h.Size))
	if err != nil || int64(len(mb)) != h.Size {
		return nil, damaged("reading the manifest: %v", err)
	}
	m := &Manifest{}
	dec := json.NewDecoder(bytes.NewReader(mb))
	dec.DisallowUnknownFields()
	if err := dec.Decode(m); err != nil {
		return nil, damaged("manifest: %v", err)
	}
	if err := m.validate(); err != nil {
		return nil, damaged("%v", err)
	}
	if check != nil {
		if err := check(m); err != nil {
			return nil, err
		}
	}
	for _, it := range m.Items {
		if it.Kind != "file" {
			continue
		}
		h, err := next(dataPrefix + it.Path)
		if err != nil {
			return nil, err
		}
		if h.Name != dataPrefix+it.Path {
			return nil, damaged("entry %q where %s%s belongs", h.Name, dataPrefix, it.Path)
		}
		if h.Size != it.Size {
			return nil, damaged("%s: %d bytes, the manifest says %d", it.Path, h.Size, it.Size)
		}
		want, _ := index.ParseHash(it.Hash)
		hr := &hashingReader{r: io.LimitReader(tr, it.Size), h: index.NewHasher()}
		if visit != nil {
			if err := visit(it, hr); err != nil {
				return nil, fmt.Errorf("%s: %w", it.Path, err)
			}
		}
		if _, err := io.Copy(io.Discard, hr); err != nil {
			return nil, damaged("%s: %v", it.Path, err)
		}
		if hr.n != it.Size || hr.h.Sum() != want {
			return nil, damaged("%s: content does not match its hash in the manifest", it.Path)
		}
	}
	h, err = next(SumName)
	if err != nil {
		return nil, err
	}
	if h.Name != SumName || h.Size > maxSum {
		return nil, damaged("entry %q where %s belongs", h.Name, SumName)
	}
	sb, err := io.ReadAll(io.LimitReader(tr, h.Size))
	if err != nil {
		return nil, damaged("reading %s: %v", SumName, err)
	}
	if string(sb) != index.Sum(mb).String() {
		return nil, damaged("the manifest does not match %s", SumName)
	}
	if h, err := tr.Next(); err != io.EOF {
		if err != nil {
			return nil, damaged("after %s: %v", SumName, err)
		}
		return nil, damaged("unexpected entry %q after %s", h.Name, SumName)
	}
	// the rest of the zstd stream: its frame checksum, nothing else
	if n, err := io.Copy(io.Discard, io.LimitReader(zr, 1<<20)); err != nil {
		return nil, damaged("%v", err)
	} else if n > 10240 {
		return nil, damaged("%d bytes after the end of the archive", n)
	}
	if _, err := io.Copy(io.Discard, hb); err != nil {
		return nil, damaged("%v", err)
	}
	if !bytes.Equal(hb.tail, trailer(hb.h.Sum())) {
		return nil, damaged("the archive's bytes do not match its trailing hash")
	}
	return m, nil
}

// ReadFile is Read of the archive at path.
func ReadFile(path string, check func(*Manifest) error, visit Visit) (*Manifest, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	m, err := Read(f, check, visit)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return m, nil
}

// WriteFile writes an archive of m to path atomically: to a temporary file
// in path's directory, synced, read back and verified with Read, then
// renamed into place and the directory synced. On any error nothing is
// left at path (an older file there stays as it was).
func WriteFile(ctx context.Context, path string, m *Manifest, content Content) (err error) {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return fmt.Errorf("write backup %s: %w", path, err)
	}
	tmp := f.Name()
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(tmp)
		}
	}()
	if err := f.Chmod(0o600); err != nil {
		return fmt.Errorf("write backup %s: %w", path, err)
	}
	if err := Write(ctx, f, m, content); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("write backup %s: %w", path, err)
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return fmt.Errorf("write backup %s: %w", path, err)
	}
	if _, err := Read(f, nil, nil); err != nil {
		return fmt.Errorf("write backup %s: the archive written does not verify: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("write backup %s: %w", path, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("write backup %s: %w", path, err)
	}
	if d, derr := os.Open(dir); derr == nil {
		serr := d.Sync()
		d.Close()
		if serr != nil {
			return fmt.Errorf("write backup %s: sync %s: %w", path, dir, serr)
		}
	}
	return nil
}
