package delta

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"math/bits"

	"github.com/klauspost/compress/zstd"
	"github.com/zeebo/xxh3"

	"pbxsync/internal/index"
)

const sigMagic = "PBXS"

// Bounds on block sizes, for signatures read from the wire and for
// Options.BlockSize.
const (
	MinBlockSize = 16
	MaxBlockSize = 1 << 20
)

// Block size choice (see docs/delta.md for the measurements behind them).
const (
	// sigMinBlock and sigMaxBlock bound the block size of signatures that
	// cross the wire; between them it grows as √n (signatureBlockSize).
	sigMinBlock = 512
	sigMaxBlock = 128 << 10

	// localMinBlock is the smallest block of a sender-side (local)
	// signature; localMaxBlocks bounds its block count and so its memory
	// (about 22 bytes a block).
	localMinBlock  = 128
	localMaxBlocks = 1 << 19

	// localStrongLen is the strong-hash length kept in a local signature.
	localStrongLen = 8

	// sigSafetyBits: a wire signature's strong hash is sized for a false
	// match in at most one of 2^16 transfers, which the result hash then
	// catches (rsync aims at 2^-10 and redoes the file with full sums on a
	// whole-file checksum mismatch).
	sigSafetyBits = 16
)

// MinStrongLen and MaxStrongLen bound the strong-hash bytes per block of a
// signature.
const (
	MinStrongLen = 2
	MaxStrongLen = 16
)

// signatureBlockSize returns the block size of a wire signature of a base
// of size bytes: f·√size, rounded down to a multiple of 16, within
// [512 B, 128 KiB], where f is 2 for compressible content and 1 for
// content that does not compress (audio). rsync uses 700 B up to 490 KB
// and √n above. The best block balances the signature (∝ n/B) against the
// literal each edit costs (∝ B × how well literals compress), so it is
// ∝ √(n / compressibility): literals of text compress about 4×, hence the
// factor 2. docs/delta.md has the sweep.
func signatureBlockSize(size int64, compressible bool) int {
	f := 1.0
	if compressible {
		f = 2
	}
	b := int(f*math.Sqrt(float64(size))) &^ 15
	return min(max(b, sigMinBlock), sigMaxBlock)
}

// compressible reports whether a sample of up to 64 KiB from the middle of
// f compresses to under half with fast zstd.
func compressible(f File) bool {
	n := min(f.Size, 64<<10)
	if n < 1024 {
		return true
	}
	b := make([]byte, n)
	if got, _ := f.R.ReadAt(b, (f.Size-n)/2); int64(got) < n {
		return true
	}
	enc, err := zstd.NewWriter(nil, zstd.WithEncoderLevel(zstd.SpeedFastest), zstd.WithEncoderConcurrency(1))
	if err != nil {
		return true
	}
	defer enc.Close()
	return int64(len(enc.EncodeAll(b, nil)))*2 < n
}

// localBlockSize returns the block size of the signature a sender builds of
// a base it holds: small, since it never crosses the wire, but with at most
// localMaxBlocks blocks.
func localBlockSize(size int64) int {
	b := int((size + localMaxBlocks - 1) / localMaxBlocks)
	b = (b + 15) &^ 15
	return min(max(b, localMinBlock), MaxBlockSize)
}

// strongLenFor returns the strong-hash bytes per block for a wire
// signature, the way rsync sizes its own: enough that the expected number
// of false block matches (weak-checksum collisions over every position of
// a target up to 4× the base, that the strong hash also passes) stays
// below 2^-sigSafetyBits. A false match that slips through is caught by
// the result hash (ErrCorrupt); the caller then retries with StrongLen 16.
func strongLenFor(size int64, blockSize int) int {
	blocks := max(1, (size+int64(blockSize)-1)/int64(blockSize))
	positions := max(4*size, 1<<20)
	b := bits.Len64(uint64(positions)) + bits.Len64(uint64(blocks)) - 32 + sigSafetyBits
	return min(max((b+7)/8, MinStrongLen), 16)
}

// Signature holds per-block weak and strong checksums of a base: the
// receiver sends one when the sender does not hold the base it has. Decode
// one with ReadSignature and pass it to Diff.
type Signature struct {
	BlockSize int        // bytes per block; the last block may be shorter
	BaseSize  int64      // length of the base
	BaseHash  index.Hash // BLAKE3-256 of the base
	StrongLen int        // bytes of xxh3-128 kept per block

	weak   []uint32
	strong []byte // StrongLen bytes per block
	tbl    *sigTable
}

// Blocks returns the number of blocks.
func (s *Signature) Blocks() int { return len(s.weak) }

// fullBlocks is the number of blocks of exactly BlockSize bytes.
func (s *Signature) fullBlocks() int { return int(s.BaseSize / int64(s.BlockSize)) }

func (s *Signature) strongOf(i int) []byte { return s.strong[i*s.StrongLen : (i+1)*s.StrongLen] }

func blockCount(size int64, blockSize int) int64 {
	return (size + int64(blockSize) - 1) / int64(blockSize)
}

// scanBlocks reads size bytes from r and calls fn with the weak checksum
// and xxh3-128 of each block of blockSize bytes (the last may be shorter).
func scanBlocks(r io.Reader, size int64, blockSize int, fn func(weak uint32, strong [16]byte) error) error {
	chunk := max(1, (1<<20)/blockSize) * blockSize
	buf := make([]byte, chunk)
	for left := size; left > 0; {
		n := int(min(int64(chunk), left))
		if _, err := io.ReadFull(r, buf[:n]); err != nil {
			return fmt.Errorf("reading base (%d bytes left): %w", left, err)
		}
		left -= int64(n)
		for p := buf[:n]; len(p) > 0; {
			b := p[:min(blockSize, len(p))]
			p = p[len(b):]
			if err := fn(weakOf(rollSum(b)), xxh3.Hash128(b).Bytes()); err != nil {
				return err
			}
		}
	}
	return nil
}

// buildSignature computes the signature of base in memory (the sender side
// of a base-aware delta). With hash set it returns the hash of the base as
// read.
func buildSignature(ctx context.Context, base io.Reader, size int64, blockSize, strongLen int, hash bool) (*Signature, index.Hash, error) {
	n := blockCount(size, blockSize)
	s := &Signature{
		BlockSize: blockSize,
		BaseSize:  size,
		StrongLen: strongLen,
		weak:      make([]uint32, 0, n),
		strong:    make([]byte, 0, n*int64(strongLen)),
	}
	hr := &hashingReader{r: ctxReader{ctx: ctx, r: base}}
	if hash {
		hr.h = index.NewHasher()
	}
	err := scanBlocks(hr, size, blockSize, func(weak uint32, strong [16]byte) error {
		s.weak = append(s.weak, weak)
		s.strong = append(s.strong, strong[:strongLen]...)
		return nil
	})
	if err != nil {
		return nil, index.Hash{}, fmt.Errorf("delta: signature: %w", err)
	}
	if hash {
		s.BaseHash = hr.h.Sum()
	}
	return s, s.BaseHash, nil
}

// SignatureOptions tune WriteSignature.
type SignatureOptions struct {
	// BlockSize overrides the block size; 0 chooses it from the size and
	// how well a sample of the base compresses: 2·√n for text, √n for
	// audio, within [512 B, 128 KiB].
	BlockSize int
	// StrongLen overrides the strong-hash bytes per block (MinStrongLen to
	// MaxStrongLen); 0 sizes it from the base. Use MaxStrongLen to retry a
	// transfer whose result failed its hash check.
	StrongLen int
}

// WriteSignature streams the signature of base to w, reading base once, in
// memory bounded by the block size (about 1 MiB). It returns the number of
// bytes written. If base.Hash is set, it is checked against what was read.
func WriteSignature(ctx context.Context, w io.Writer, base File, opts *SignatureOptions) (int64, error) {
	var bs int
	if opts != nil && opts.BlockSize != 0 {
		bs = opts.BlockSize
	} else {
		bs = signatureBlockSize(base.Size, compressible(base))
	}
	if bs < MinBlockSize || bs > MaxBlockSize {
		return 0, fmt.Errorf("delta: signature block size %d outside [%d, %d]", bs, MinBlockSize, MaxBlockSize)
	}
	sl := strongLenFor(base.Size, bs)
	if opts != nil && opts.StrongLen != 0 {
		sl = opts.StrongLen
	}
	if sl < MinStrongLen || sl > MaxStrongLen {
		return 0, fmt.Errorf("delta: signature strong length %d outside [%d, %d]", sl, MinStrongLen, MaxStrongLen)
	}
	cw := &countWriter{w: w}
	bw := bufio.NewWriterSize(cw, 64<<10)
	sum := xxh3.New()
	out := io.MultiWriter(bw, sum)

	hdr := append([]byte(sigMagic), Version, 0, byte(sl))
	hdr = binary.AppendUvarint(hdr, uint64(bs))
	hdr = binary.AppendUvarint(hdr, uint64(base.Size))
	hdr = binary.LittleEndian.AppendUint32(hdr, uint32(xxh3.Hash(hdr)))
	if _, err := out.Write(hdr); err != nil {
		return cw.n, fmt.Errorf("delta: writing signature: %w", err)
	}
	hr := newHashingReader(base.sequential(ctx))
	var ent [4 + 16]byte
	err := scanBlocks(hr, base.Size, bs, func(weak uint32, strong [16]byte) error {
		binary.LittleEndian.PutUint32(ent[:4], weak)
		copy(ent[4:], strong[:sl])
		_, err := out.Write(ent[:4+sl])
		return err
	})
	if err != nil {
		return cw.n, fmt.Errorf("delta: writing signature: %w", err)
	}
	h := hr.h.Sum()
	if !base.Hash.IsZero() && h != base.Hash {
		return cw.n, fmt.Errorf("delta: signature: base hashes to %s, expected %s (changed while reading?)", h.Short(), base.Hash.Short())
	}
	if _, err := out.Write(h[:]); err != nil {
		return cw.n, fmt.Errorf("delta: writing signature: %w", err)
	}
	if _, err := bw.Write(binary.LittleEndian.AppendUint64(nil, sum.Sum64())); err != nil {
		return cw.n, fmt.Errorf("delta: writing signature: %w", err)
	}
	if err := bw.Flush(); err != nil {
		return cw.n, fmt.Errorf("delta: writing signature: %w", err)
	}
	return cw.n, nil
}

// SignatureLimits bound what ReadSignature accepts.
type SignatureLimits struct {
	// MaxBlocks bounds the block count and so the memory of the decoded
	// signature (up to 20 bytes a block plus the lookup table, ~12 bytes);
	// 0 means DefaultMaxSignatureBlocks.
	MaxBlocks int
	// MaxBaseSize bounds the base size; 0 means no bound beyond MaxBlocks.
	MaxBaseSize int64
}

// DefaultMaxSignatureBlocks is the default SignatureLimits.MaxBlocks: about
// 32 MB of decoded signature, enough for bases up to 128 GiB at the default
// block sizes.
const DefaultMaxSignatureBlocks = 1 << 20

// ReadSignature decodes a signature written by WriteSignature, consuming
// exactly its bytes. Every length is bounded before use; a damaged or
// truncated signature is refused with ErrCorrupt, one beyond lim with
// ErrTooLarge.
func ReadSignature(r io.Reader, lim *SignatureLimits) (*Signature, error) {
	maxBlocks := DefaultMaxSignatureBlocks
	var maxBase int64 = math.MaxInt64
	if lim != nil {
		if lim.MaxBlocks > 0 {
			maxBlocks = lim.MaxBlocks
		}
		if lim.MaxBaseSize > 0 {
			maxBase = lim.MaxBaseSize
		}
	}
	hr := &headerReader{r: r}
	m := hr.bytes(len(sigMagic) + 3)
	if hr.err != nil {
		return nil, fmt.Errorf("signature: %w", hr.err)
	}
	if string(m[:4]) != sigMagic {
		return nil, corruptf("signature: bad magic %q", m[:4])
	}
	if m[4] != Version {
		return nil, fmt.Errorf("%w: signature format version %d", ErrUnsupported, m[4])
	}
	if m[5] != 0 {
		return nil, fmt.Errorf("%w: signature flags %#x", ErrUnsupported, m[5])
	}
	sl := int(m[6])
	bs := hr.size("block size")
	size := hr.size("base size")
	if hr.err != nil {
		return nil, fmt.Errorf("signature: %w", hr.err)
	}
	want := uint32(xxh3.Hash(hr.buf))
	sumb := hr.bytes(4)
	if hr.err != nil {
		return nil, fmt.Errorf("signature: %w", hr.err)
	}
	if got := binary.LittleEndian.Uint32(sumb); got != want {
		return nil, corruptf("signature header checksum %08x, computed %08x", got, want)
	}
	switch {
	case sl < MinStrongLen || sl > MaxStrongLen:
		return nil, corruptf("signature strong length %d outside [%d, %d]", sl, MinStrongLen, MaxStrongLen)
	case bs < MinBlockSize || bs > MaxBlockSize:
		return nil, corruptf("signature block size %d outside [%d, %d]", bs, MinBlockSize, MaxBlockSize)
	case size > maxBase:
		return nil, fmt.Errorf("%w: signature of a %d-byte base, limit %d", ErrTooLarge, size, maxBase)
	}
	n := blockCount(size, int(bs))
	if n > int64(maxBlocks) {
		return nil, fmt.Errorf("%w: signature of %d blocks, limit %d", ErrTooLarge, n, maxBlocks)
	}
	s := &Signature{BlockSize: int(bs), BaseSize: size, StrongLen: sl}
	sum := xxh3.New()
	sum.Write(hr.buf)
	body := io.TeeReader(bufio.NewReaderSize(io.LimitReader(r, n*int64(4+sl)+index.HashSize), 64<<10), sum)
	// Grow as data arrives, so a forged count costs no memory up front.
	var ent [4 + 16]byte
	for i := int64(0); i < n; i++ {
		if _, err := io.ReadFull(body, ent[:4+sl]); err != nil {
			return nil, sigReadErr(err, fmt.Sprintf("block %d of %d", i, n))
		}
		s.weak = append(s.weak, binary.LittleEndian.Uint32(ent[:4]))
		s.strong = append(s.strong, ent[4:4+sl]...)
	}
	if _, err := io.ReadFull(body, s.BaseHash[:]); err != nil {
		return nil, sigReadErr(err, "base hash")
	}
	var tail [8]byte
	if _, err := io.ReadFull(r, tail[:]); err != nil {
		return nil, sigReadErr(err, "checksum")
	}
	if got, want := binary.LittleEndian.Uint64(tail[:]), sum.Sum64(); got != want {
		return nil, corruptf("signature checksum %016x, computed %016x", got, want)
	}
	return s, nil
}

func sigReadErr(err error, what string) error {
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return corruptf("signature truncated in %s", what)
	}
	return fmt.Errorf("delta: reading signature %s: %w", what, err)
}

// countWriter counts bytes written through it.
type countWriter struct {
	w io.Writer
	n int64
}

func (c *countWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}
