package store

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/zeebo/xxh3"
	bolt "go.etcd.io/bbolt"

	"pbxsync/internal/index"
)

// Pack files hold the small blobs (at most SmallBlob bytes compressed),
// out of the metadata database: reading a small blob out of bbolt went
// through its memory map, which kept the pages around every blob read
// resident (100-170 MiB of file-backed RSS at 100,000 files). A pack is
// read with pread (os.File.ReadAt) into a buffer of the blob's size, and
// written by appending only:
//
//	packs/000001.pack   "PBXPACK1", then records:
//	                    hash (32) | length (uint32 LE) | XXH3-64 (LE) of
//	                    hash, length and payload | payload (a zstd frame)
//
// The database keeps hash → (pack, offset, length) of the record in the
// location buckets (see locations.go: a main and a recent one), and in
// bucket packs, pack → (committed size, dead bytes).
// A batch of small blobs is appended to the active pack and fsynced
// before the commit that records their locations and the pack's new
// size; a crash in between leaves bytes past the committed size, which
// Open truncates away (and removes a pack the database does not know).
// GC deletes locations and counts the bytes of their records as dead in
// their pack; a pack at least half dead is compacted: its live records
// are appended to the active pack, and it is removed (see compactPacks).
//
// Stores that kept small blobs as values of bucket blobs (before packs)
// have them moved into packs by Open (migrateBlobsToPacks); readers look
// in both places meanwhile.
const (
	packMagic     = "PBXPACK1"
	packRecHeader = 32 + 4 + 8
	// packMax is the size from which a new pack is started.
	packMax = 256 << 20
	// packBuf is the write buffer of a batch appended to a pack.
	packBuf = 1 << 20
)

var (
	bktPacked = []byte("packed")
	bktPacks  = []byte("packs")
)

// packLoc is where a small blob's record is: pack number, offset of the
// record and length of its payload.
type packLoc struct {
	pack uint32
	off  int64
	n    uint32
}

// recLen is the length of the whole record.
func (l packLoc) recLen() int64 { return packRecHeader + int64(l.n) }

func (l packLoc) encode(h index.Hash) []byte {
	var b [16]byte
	binary.BigEndian.PutUint32(b[0:], l.pack)
	binary.BigEndian.PutUint64(b[4:], uint64(l.off))
	binary.BigEndian.PutUint32(b[12:], l.n)
	return seal(h[:], b[:])
}

// decodeLoc checks and decodes a value of bucket packed; errors wrap
// ErrCorrupt.
func decodeLoc(h index.Hash, v []byte) (packLoc, error) {
	b, why := unsealed(h[:], v)
	if why != "" {
		return packLoc{}, fmt.Errorf("%w: location of blob %s: %s", ErrCorrupt, h, why)
	}
	if len(b) != 16 {
		return packLoc{}, fmt.Errorf("%w: location of blob %s: %d bytes", ErrCorrupt, h, len(b))
	}
	l := packLoc{
		pack: binary.BigEndian.Uint32(b[0:]),
		off:  int64(binary.BigEndian.Uint64(b[4:])),
		n:    binary.BigEndian.Uint32(b[12:]),
	}
	if l.off < int64(len(packMagic)) || l.n > SmallBlob || l.off > packMax+SmallBlob {
		return packLoc{}, fmt.Errorf("%w: location of blob %s: pack %d offset %d length %d", ErrCorrupt, h, l.pack, l.off, l.n)
	}
	return l, nil
}

// packInfo is a value of bucket packs.
type packInfo struct {
	size int64 // committed: records past it are garbage of a crash
	dead int64 // bytes of records no location points to
}

func getPackInfo(tx *bolt.Tx, n uint32) (packInfo, bool, error) {
	k := u64key(uint64(n))
	v := tx.Bucket(bktPacks).Get(k)
	if v == nil {
		return packInfo{}, false, nil
	}
	b, err := unseal(fmt.Sprintf("pack %d", n), k, v)
	if err != nil {
		return packInfo{}, false, err
	}
	if len(b) != 16 {
		return packInfo{}, false, fmt.Errorf("%w: pack %d: %d bytes of state", ErrCorrupt, n, len(b))
	}
	return packInfo{size: int64(binary.BigEndian.Uint64(b)), dead: int64(binary.BigEndian.Uint64(b[8:]))}, true, nil
}

func putPackInfo(tx *bolt.Tx, n uint32, pi packInfo) error {
	var b [16]byte
	binary.BigEndian.PutUint64(b[:], uint64(pi.size))
	binary.BigEndian.PutUint64(b[8:], uint64(pi.dead))
	k := u64key(uint64(n))
	return tx.Bucket(bktPacks).Put(k, seal(k, b[:]))
}

// addDead counts the record at l as dead in its pack.
func addDead(tx *bolt.Tx, l packLoc) error {
	pi, ok, err := getPackInfo(tx, l.pack)
	if err != nil || !ok {
		return err
	}
	pi.dead += l.recLen()
	return putPackInfo(tx, l.pack, pi)
}

// getLoc returns the location of small blob h in tx, if it is in a pack.
func getLoc(tx *bolt.Tx, h index.Hash) (packLoc, bool, error) {
	v := openLocations(tx).get(h)
	if v == nil {
		return packLoc{}, false, nil
	}
	l, err := decodeLoc(h, v)
	return l, err == nil, err
}

// hasSmall reports whether tx holds small blob h (in a pack or, from
// before packs, in bucket blobs).
func hasSmall(tx *bolt.Tx, h index.Hash) bool {
	if openLocations(tx).get(h) != nil {
		return true
	}
	return tx.Bucket(bktBlobs).Get(h[:]) != nil
}

// smallLookup answers hasSmall for many blobs in one transaction (a
// flush's check of its batch, Missing): each bucket keeps one cursor
// (orderedGet), so blobs looked up in hash order walk the buckets' leaves
// instead of descending from the root for each, and bucket blobs is not
// searched at all when it is empty, as it is while a scan stores its files
// (its batches go to packs, see dbBlobsBytes). Only for a read
// transaction, or one that writes none of those buckets while it is used.
type smallLookup struct {
	recent, main, blobs orderedGet
}

func newSmallLookup(tx *bolt.Tx) smallLookup {
	loc := openLocations(tx)
	l := smallLookup{recent: newOrderedGet(loc.recent), main: newOrderedGet(loc.main)}
	if b := tx.Bucket(bktBlobs); b != nil {
		if k, _ := b.Cursor().First(); k != nil {
			l.blobs = newOrderedGet(b)
		}
	}
	return l
}

// has is hasSmall(tx, h), fastest for blobs in ascending hash order.
func (l *smallLookup) has(h index.Hash) bool {
	return l.recent.get(h) != nil || l.main.get(h) != nil || l.blobs.get(h) != nil
}

// appendRecord appends the record of payload p under h to b.
func appendRecord(b []byte, h index.Hash, p []byte) []byte {
	return append(appendRecordHeader(b, h, p), p...)
}

// appendRecordHeader appends the header of the record of p under h to b.
func appendRecordHeader(b []byte, h index.Hash, p []byte) []byte {
	b = append(b, h[:]...)
	b = binary.LittleEndian.AppendUint32(b, uint32(len(p)))
	return binary.LittleEndian.AppendUint64(b, recordSum(h, p))
}

func recordSum(h index.Hash, p []byte) uint64 {
	d := xxh3.New()
	_, _ = d.Write(h[:])
	var n [4]byte
	binary.LittleEndian.PutUint32(n[:], uint32(len(p)))
	_, _ = d.Write(n[:])
	_, _ = d.Write(p)
	return d.Sum64()
}

// decodeRecord checks the record at the start of b and returns its hash,
// its payload (sharing b's memory) and its whole length. Errors wrap
// ErrCorrupt; a b shorter than the record is io.ErrUnexpectedEOF too. On a
// checksum mismatch (errRecordSum) the hash, payload and length are
// returned as well: the header's length was within bounds.
func decodeRecord(b []byte) (index.Hash, []byte, int, error) {
	var h index.Hash
	if len(b) < packRecHeader {
		return h, nil, 0, fmt.Errorf("%w: pack record: short header: %w", ErrCorrupt, io.ErrUnexpectedEOF)
	}
	copy(h[:], b)
	n := binary.LittleEndian.Uint32(b[32:])
	if n > SmallBlob {
		return h, nil, 0, fmt.Errorf("%w: pack record of blob %s: length %d", ErrCorrupt, h, n)
	}
	end := packRecHeader + int(n)
	if len(b) < end {
		return h, nil, 0, fmt.Errorf("%w: pack record of blob %s: %d of %d bytes: %w", ErrCorrupt, h, len(b), end, io.ErrUnexpectedEOF)
	}
	p := b[packRecHeader:end]
	if binary.LittleEndian.Uint64(b[36:]) != recordSum(h, p) {
		return h, p, end, fmt.Errorf("%w: pack record of blob %s: %w", ErrCorrupt, h, errRecordSum)
	}
	return h, p, end, nil
}

var errRecordSum = errors.New("checksum mismatch")

func (s *Store) packsDir() string { return filepath.Join(s.dir, "packs") }

func (s *Store) packPath(n uint32) string {
	return filepath.Join(s.packsDir(), fmt.Sprintf("%06d.pack", n))
}

// packNumber parses a pack's file name.
func packNumber(name string) (uint32, bool) {
	num, ok := strings.CutSuffix(name, ".pack")
	if !ok || len(num) < 6 {
		return 0, false
	}
	n, err := strconv.ParseUint(num, 10, 32)
	if err != nil || n == 0 || fmt.Sprintf("%06d", n) != num {
		return 0, false
	}
	return uint32(n), true
}

// readPack reads the record at l of blob h and returns its payload (a
// buffer of its own). Called with packMu held shared, so that the pack is
// not removed meanwhile. A record of the right blob and length whose
// checksum fails is returned all the same (with a warning): the reader's
// checks (zstd's frame checksum, the content hash at EOF) tell whether the
// payload is damaged, and move it aside when it is (quarantine).
func (s *Store) readPack(h index.Hash, l packLoc) ([]byte, error) {
	f, err := s.packFile(l.pack)
	if err != nil {
		return nil, fmt.Errorf("store: blob %s: %w", h, err)
	}
	buf := make([]byte, l.recLen())
	if _, err := f.ReadAt(buf, l.off); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, fmt.Errorf("%w: blob %s: pack %d ends before offset %d + %d", ErrCorrupt, h, l.pack, l.off, len(buf))
		}
		return nil, fmt.Errorf("store: blob %s: read pack %d: %w", h, l.pack, err)
	}
	got, p, _, err := decodeRecord(buf)
	switch {
	case errors.Is(err, errRecordSum) && got == h && len(p) == int(l.n):
		s.log.Warn("pack record checksum mismatch; reading the blob to check it", "blob", h.String(), "pack", l.pack, "offset", l.off)
	case err != nil:
		return nil, fmt.Errorf("blob %s in pack %d at %d: %w", h, l.pack, l.off, err)
	case got != h || len(p) != int(l.n):
		return nil, fmt.Errorf("%w: blob %s: pack %d at %d holds blob %s", ErrCorrupt, h, l.pack, l.off, got)
	}
	return p, nil
}

// packFile returns the open read handle of pack n.
func (s *Store) packFile(n uint32) (*os.File, error) {
	s.packFilesMu.Lock()
	defer s.packFilesMu.Unlock()
	if f, ok := s.packFiles[n]; ok {
		return f, nil
	}
	f, err := os.Open(s.packPath(n))
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("pack %d: %w", n, ErrNotFound)
		}
		return nil, err
	}
	s.packFiles[n] = f
	return f, nil
}

// closePackFile closes the read handle of pack n (removed or rewritten).
func (s *Store) closePackFile(n uint32) {
	s.packFilesMu.Lock()
	defer s.packFilesMu.Unlock()
	if f, ok := s.packFiles[n]; ok {
		_ = f.Close()
		delete(s.packFiles, n)
	}
}

// closePacks closes every pack handle.
func (s *Store) closePacks() {
	s.packFilesMu.Lock()
	for n, f := range s.packFiles {
		_ = f.Close()
		delete(s.packFiles, n)
	}
	s.packFilesMu.Unlock()
	if s.active != nil {
		_ = s.active.Close()
		s.active = nil
	}
}

// packRec is a record to append: blob h's payload.
type packRec struct {
	h    index.Hash
	data []byte
}

// packWrite is what appendPacks wrote: the location of every record and
// the new committed size of every pack it wrote to, for the transaction
// that records them (recordPackWrite).
type packWrite struct {
	locs  map[index.Hash]packLoc
	sizes map[uint32]int64
}

// appendPacks appends recs to the active pack (starting new ones at
// packMax) and makes them durable: every pack written is fsynced, and the
// packs directory when a pack was created. Called with s.mu held. When
// the transaction that should record the write fails, the caller must
// call abandonActive.
func (s *Store) appendPacks(recs []packRec) (packWrite, error) {
	w := packWrite{locs: make(map[index.Hash]packLoc, len(recs)), sizes: map[uint32]int64{}}
	if len(recs) == 0 {
		return w, nil
	}
	created := false
	var bw *bufio.Writer
	finish := func() error {
		if bw == nil {
			return nil
		}
		if err := bw.Flush(); err != nil {
			return fmt.Errorf("write pack %d: %w", s.activeN, err)
		}
		if err := s.active.Sync(); err != nil {
			return fmt.Errorf("fsync pack %d: %w", s.activeN, err)
		}
		bw = nil
		return nil
	}
	var hdr []byte
	for _, r := range recs {
		n := int64(packRecHeader + len(r.data))
		if s.active != nil && s.activeSize+n > packMax && s.activeSize > int64(len(packMagic)) {
			if err := finish(); err != nil {
				return w, err
			}
			_ = s.active.Close()
			s.active = nil
			s.activeN++
			if err := s.createPack(); err != nil {
				return w, err
			}
			created = true
		}
		if s.active == nil {
			c, err := s.openActive()
			if err != nil {
				return w, err
			}
			created = created || c
		}
		if bw == nil {
			bw = bufio.NewWriterSize(s.active, packBuf)
		}
		hdr = appendRecordHeader(hdr[:0], r.h, r.data)
		if _, err := bw.Write(hdr); err != nil {
			return w, fmt.Errorf("write pack %d: %w", s.activeN, err)
		}
		if _, err := bw.Write(r.data); err != nil {
			return w, fmt.Errorf("write pack %d: %w", s.activeN, err)
		}
		w.locs[r.h] = packLoc{pack: s.activeN, off: s.activeSize, n: uint32(len(r.data))}
		s.activeSize += n
		w.sizes[s.activeN] = s.activeSize
	}
	if err := finish(); err != nil {
		return w, err
	}
	if created {
		if err := syncDir(s.packsDir()); err != nil {
			return w, err
		}
	}
	return w, nil
}

// openActive opens the pack to append to: the newest one the database
// knows, at its committed size, unless it is full or half dead; else a
// new one. It reports whether it created one.
func (s *Store) openActive() (bool, error) {
	var last uint32
	var pi packInfo
	err := s.db.View(func(tx *bolt.Tx) error {
		k, _ := tx.Bucket(bktPacks).Cursor().Last()
		if k == nil {
			return nil
		}
		last = uint32(u64val(k))
		var err error
		pi, _, err = getPackInfo(tx, last)
		return err
	})
	if err != nil {
		return false, err
	}
	if last != 0 && pi.size < packMax && !pi.halfDead() {
		f, err := os.OpenFile(s.packPath(last), os.O_RDWR, 0)
		if err != nil {
			return false, fmt.Errorf("open pack %d: %w", last, err)
		}
		if err := f.Truncate(pi.size); err != nil {
			_ = f.Close()
			return false, fmt.Errorf("truncate pack %d: %w", last, err)
		}
		if _, err := f.Seek(pi.size, io.SeekStart); err != nil {
			_ = f.Close()
			return false, fmt.Errorf("open pack %d: %w", last, err)
		}
		s.active, s.activeN, s.activeSize = f, last, pi.size
		return false, nil
	}
	s.activeN = last + 1
	return true, s.createPack()
}

// createPack creates pack s.activeN (empty but for its magic) as the
// active pack.
func (s *Store) createPack() error {
	f, err := os.OpenFile(s.packPath(s.activeN), os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return fmt.Errorf("create pack %d: %w", s.activeN, err)
	}
	if _, err := f.WriteString(packMagic); err != nil {
		_ = f.Close()
		return fmt.Errorf("create pack %d: %w", s.activeN, err)
	}
	s.closePackFile(s.activeN) // a handle of an abandoned file of this number
	s.active, s.activeSize = f, int64(len(packMagic))
	return nil
}

// abandonActive forgets the active pack after a failed transaction: the
// next append reopens it at its committed size.
func (s *Store) abandonActive() {
	if s.active != nil {
		_ = s.active.Close()
		s.active = nil
	}
}

// recordPackWrite records w in tx: the new sizes of the packs written and,
// for each record, its location, unless keep says the blob is stored
// already (then the record is dead at once). keep may be nil.
func recordPackWrite(tx *bolt.Tx, w packWrite, keep func(h index.Hash, l packLoc) (bool, error)) error {
	dead := map[uint32]int64{}
	packed := openLocations(tx)
	for _, h := range sortedHashes(w.locs) {
		l := w.locs[h]
		if keep != nil {
			ok, err := keep(h, l)
			if err != nil {
				return err
			}
			if !ok {
				dead[l.pack] += l.recLen()
				continue
			}
		}
		if err := packed.put(h, l.encode(h)); err != nil {
			return err
		}
	}
	for n, size := range w.sizes {
		pi, _, err := getPackInfo(tx, n)
		if err != nil {
			return err
		}
		pi.size = size
		pi.dead += dead[n]
		if err := putPackInfo(tx, n, pi); err != nil {
			return err
		}
	}
	return nil
}

// initPacks creates packs/ and repairs it after a crash: every pack is cut
// to its committed size, and a pack the database does not know is removed.
func (s *Store) initPacks() error {
	if err := mkdirAllSync(s.packsDir()); err != nil {
		return err
	}
	ents, err := os.ReadDir(s.packsDir())
	if err != nil {
		return err
	}
	removed := false
	for _, e := range ents {
		n, ok := packNumber(e.Name())
		if !ok {
			continue
		}
		var pi packInfo
		var known bool
		if err := s.db.View(func(tx *bolt.Tx) error {
			var err error
			pi, known, err = getPackInfo(tx, n)
			return err
		}); err != nil {
			return err
		}
		path := s.packPath(n)
		if !known {
			if err := os.Remove(path); err != nil {
				return fmt.Errorf("remove leftover pack: %w", err)
			}
			removed = true
			s.log.Info("removed a pack the database does not know (a crash before its commit)", "pack", path)
			continue
		}
		if info, err := e.Info(); err == nil && info.Size() > pi.size {
			if err := os.Truncate(path, pi.size); err != nil {
				return fmt.Errorf("truncate pack %d: %w", n, err)
			}
		}
	}
	if removed {
		return syncDir(s.packsDir())
	}
	return nil
}

// dbBlobsBytes bounds the small blobs of one commit that stay in the
// database's blobs bucket instead of a pack: a pack costs its own fsync
// before the commit's, which a one-file change would pay in its latency
// (+15-20 ms change→applied on this machine's disk). So few blobs cost one
// fsync, as before packs; the next GC or Open moves them into a pack in
// bulk (migrateBlobsToPacks), so the database and its map stay small.
const dbBlobsBytes = 256 << 10

// splitSmall parts the small blobs of one commit into those to append to a
// pack and those to put into the database: all into the database when they
// take at most dbBytes (dbBlobsBytes but in tests), else all into a pack.
func splitSmall(recs []packRec, dbBytes int) (packed, inDB []packRec) {
	n := 0
	for _, r := range recs {
		n += len(r.data)
	}
	if n <= dbBytes {
		return nil, recs
	}
	return recs, nil
}

// putInDB puts the small blobs recs that the store has nowhere yet into
// the blobs bucket (see dbBlobsBytes).
func putInDB(tx *bolt.Tx, recs []packRec) error {
	b := tx.Bucket(bktBlobs)
	for _, r := range recs {
		if hasSmall(tx, r.h) {
			continue
		}
		if err := b.Put(r.h[:], r.data); err != nil {
			return fmt.Errorf("put blob %s: %w", r.h, err)
		}
	}
	return nil
}

// migrateBlobsToPacks moves the small blobs of bucket blobs (a store
// written before packs, or one just migrated from format 1) into packs, a
// batch at a time: appended and fsynced, then one commit records their
// locations and deletes them from the bucket. A crash in between leaves
// them in the bucket (and the bytes past the pack's committed size, cut
// by the next Open), where readers still find them.
func (s *Store) migrateBlobsToPacks() error {
	moved := 0
	for {
		var recs []packRec
		size := 0
		if err := s.db.View(func(tx *bolt.Tx) error {
			c := tx.Bucket(bktBlobs).Cursor()
			for k, v := c.First(); k != nil && size < flushPendingBytes; k, v = c.Next() {
				var h index.Hash
				copy(h[:], k)
				recs = append(recs, packRec{h: h, data: bytes.Clone(v)})
				size += len(v)
			}
			return nil
		}); err != nil {
			return err
		}
		if len(recs) == 0 {
			break
		}
		s.mu.Lock()
		w, err := s.appendPacks(recs)
		if err == nil {
			err = s.db.Update(func(tx *bolt.Tx) error {
				err := recordPackWrite(tx, w, func(h index.Hash, _ packLoc) (bool, error) {
					_, ok, err := getLoc(tx, h)
					return !ok, err
				})
				if err != nil {
					return err
				}
				for _, r := range recs {
					if err := tx.Bucket(bktBlobs).Delete(r.h[:]); err != nil {
						return err
					}
				}
				return nil
			})
		}
		if err != nil {
			s.abandonActive()
		}
		s.mu.Unlock()
		if err != nil {
			return fmt.Errorf("move small blobs into packs: %w", err)
		}
		moved += len(recs)
	}
	if moved > 0 {
		s.log.Debug("small blobs moved from the database into pack files", "blobs", moved)
	}
	return nil
}
