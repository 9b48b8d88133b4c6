package delta

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"strings"
	"time"

	"pbxsync/internal/index"
)

// Defaults of Options.
const (
	// DefaultTryAllMaxSize: targets up to this size get every applicable
	// encoding tried (milliseconds each); above it whole-file zstd is tried
	// only when the base-aware encodings saved less than 7/8.
	DefaultTryAllMaxSize = 1 << 20
	// DefaultSpoolMemory is how much of a candidate is kept in memory
	// before it spills to a temporary file.
	DefaultSpoolMemory = 4 << 20
	// DefaultGoodEnough: a block match whose delta is at most this many
	// bytes (and at most 1/16 of the target) ends the search: dict-zstd and
	// zstd could save at most that much, and their encoders cost
	// milliseconds even on a 1 KiB file (they allocate and clear megabytes
	// of tables; BenchmarkDeltaThreshold), which is most of a small edit's
	// latency.
	DefaultGoodEnough = 1 << 10
)

// Options tune Encode, EncodeKind and Diff. The zero value (or nil) means
// the defaults.
type Options struct {
	// DictMaxSize is the largest base and target for KindDictZstd, whose
	// memory is O(base + target); 0 means DefaultDictMaxSize, < 0 never.
	DictMaxSize int64
	// TryAllMaxSize: see DefaultTryAllMaxSize; 0 means the default.
	TryAllMaxSize int64
	// BlockSize is the block size of the signature the sender builds of a
	// base it holds; 0 chooses it from the base size (128 B for bases up to
	// 64 MiB, at most 512 Ki blocks above). Diff uses the signature's.
	BlockSize int
	// SpoolMemory: see DefaultSpoolMemory; 0 means the default.
	SpoolMemory int64
	// TempDir holds spilled candidates (unlinked at creation); "" means
	// os.TempDir.
	TempDir string
	// GoodEnough: see DefaultGoodEnough; 0 means the default, < 0 always
	// tries every applicable encoding.
	GoodEnough int64
}

func (o *Options) withDefaults() Options {
	var r Options
	if o != nil {
		r = *o
	}
	if r.DictMaxSize == 0 {
		r.DictMaxSize = DefaultDictMaxSize
	}
	if r.TryAllMaxSize <= 0 {
		r.TryAllMaxSize = DefaultTryAllMaxSize
	}
	if r.SpoolMemory <= 0 {
		r.SpoolMemory = DefaultSpoolMemory
	}
	if r.GoodEnough == 0 {
		r.GoodEnough = DefaultGoodEnough
	}
	return r
}

// Result says what an encoder wrote and why.
type Result struct {
	Kind       Kind       // the encoding written
	Size       int64      // bytes written: header + payload
	TargetSize int64      // length of the target (the result of Patch)
	TargetHash index.Hash // its BLAKE3-256
	BaseSize   int64      // length of the base, when Kind needs one
	BaseHash   index.Hash // its BLAKE3-256, when Kind needs one
	BlockSize  int        // block size of the block match, if one ran
	Copied     int64      // bytes of target matched in the base (block kinds)
	Literal    int64      // bytes of target sent as literals (block kinds)
	Tried      []Attempt  // every encoding considered, in order
	Elapsed    time.Duration
}

// Attempt is one encoding the analyzer considered.
type Attempt struct {
	Kind    Kind
	Size    int64  // header + payload, or -1 if not finished
	Note    string // why it was skipped or cut short; "" if it finished
	Elapsed time.Duration
}

// String formats a as "kind=size" or "kind(note)".
func (a Attempt) String() string {
	if a.Size < 0 {
		return fmt.Sprintf("%s(%s)", a.Kind, a.Note)
	}
	return fmt.Sprintf("%s=%d", a.Kind, a.Size)
}

// Encode writes to w the smallest encoding it finds of target against base
// (nil when the receiver has no base, or the sender does not hold it: then
// use Diff with the receiver's signature).
//
// Candidates, each cut short as soon as it grows past the best so far:
// with a base, a block match against a signature of the base computed here
// (no round trip) yielding KindBlocks and KindBlocksZstd in one pass (given
// up early if the base matches under 1/32 of the target);
// then, unless the block match is already good enough (Options.GoodEnough),
// KindDictZstd when base and target are at most DictMaxSize; KindZstd when
// the target is at most TryAllMaxSize or the base saved little; KindRaw
// when nothing is smaller. Result.Tried lists them. Memory stays under
// ~40 MiB for any file size, plus O(base + target) for dict-zstd.
//
// The header goes out last-minute: nothing is written to w until the
// choice is made, and a failed Encode may have written a partial delta.
func Encode(ctx context.Context, w io.Writer, base *File, target File, opts *Options) (Result, error) {
	e := newEncoder(ctx, target, opts)
	defer e.close()
	if base != nil {
		e.setBase(base)
		if err := e.tryBlocks(nil, 0); err != nil {
			return e.res, err
		}
		if e.goodEnough() {
			e.skip(KindDictZstd, "block match good enough")
			e.skip(KindZstd, "block match good enough")
			return e.finish(w)
		}
		if e.literalsIncompressible() {
			// new random-looking content (audio, archives): zstd of the
			// target, with the base as dictionary or without, would only
			// spend a pass over it to find what the block match found
			e.skip(KindDictZstd, "new content incompressible")
			e.skip(KindZstd, "new content incompressible")
			return e.finish(w)
		}
		if err := e.tryDict(); err != nil {
			return e.res, err
		}
	}
	if base == nil || target.Size <= e.o.TryAllMaxSize || e.bestTotal > target.Size/8 {
		if err := e.tryZstd(); err != nil {
			return e.res, err
		}
	} else {
		e.skip(KindZstd, "base-aware encoding saved over 7/8")
	}
	return e.finish(w)
}

// goodEnough reports whether the best candidate so far (a block match)
// is small enough to end the search: see DefaultGoodEnough.
func (e *encoder) goodEnough() bool {
	if e.o.GoodEnough < 0 || e.bestKind == KindRaw {
		return false
	}
	return e.bestTotal <= min(e.o.GoodEnough, e.target.Size/16)
}

// literalsIncompressible reports whether the block match's op stream did
// not compress (blocks-zstd cut short as no smaller than blocks, or within
// 1/16 of it) while literals, 64 KiB or more (less may not compress for
// being short), make most of it: the new content is random-looking, and
// zstd over the whole target cannot do better.
func (e *encoder) literalsIncompressible() bool {
	if e.o.GoodEnough < 0 || e.bestKind != KindBlocks || e.res.Literal < e.target.Size/2 || e.res.Literal < lazyZstdMax {
		return false
	}
	var blocks int64 = -1
	for _, a := range e.res.Tried {
		switch {
		case a.Kind == KindBlocks:
			blocks = a.Size
		case a.Kind == KindBlocksZstd && a.Size >= 0:
			return blocks >= 0 && a.Size >= blocks-blocks/16
		case a.Kind == KindBlocksZstd:
			return strings.HasPrefix(a.Note, "cut short: no smaller")
		}
	}
	return false
}

// EncodeKind writes target against base in the one encoding kind, even if
// another would be smaller (for tests, benchmarks, and peers that only
// take some kinds). base may be nil for KindRaw and KindZstd.
func EncodeKind(ctx context.Context, w io.Writer, kind Kind, base *File, target File, opts *Options) (Result, error) {
	e := newEncoder(ctx, target, opts)
	defer e.close()
	e.forced = kind
	e.bestTotal = math.MaxInt64
	if kind.NeedsBase() {
		if base == nil {
			return e.res, fmt.Errorf("delta: %s needs a base", kind)
		}
		e.setBase(base)
	}
	var err error
	switch kind {
	case KindRaw:
		e.bestKind = KindRaw
	case KindZstd:
		err = e.tryZstd()
	case KindDictZstd:
		e.o.DictMaxSize = math.MaxInt64
		err = e.tryDict()
	case KindBlocks, KindBlocksZstd:
		err = e.tryBlocks(nil, 0)
	default:
		return e.res, fmt.Errorf("%w: kind %d", ErrUnsupported, kind)
	}
	if err != nil {
		return e.res, err
	}
	return e.finish(w)
}

// encoder runs candidates and keeps the best.
type encoder struct {
	ctx    context.Context
	o      Options
	start  time.Time
	target File
	base   *File
	forced Kind // EncodeKind: only this kind counts

	targetHash, baseHash index.Hash
	haveTarget, haveBase bool
	baseSize             int64
	best                 *spool // nil: raw
	bestKind             Kind
	bestTotal            int64
	res                  Result
}

func newEncoder(ctx context.Context, target File, opts *Options) *encoder {
	e := &encoder{ctx: ctx, o: opts.withDefaults(), start: time.Now(), target: target, bestKind: KindRaw}
	// A hash the caller gives is trusted, which saves hashing the target;
	// if the file changes meanwhile, Patch refuses the result.
	e.targetHash, e.haveTarget = target.Hash, !target.Hash.IsZero()
	e.res.TargetSize = target.Size
	e.bestTotal = e.headerSize(KindRaw, target.Size) + target.Size
	return e
}

func (e *encoder) setBase(base *File) {
	e.base = base
	e.baseSize = base.Size
	e.baseHash, e.haveBase = base.Hash, !base.Hash.IsZero()
}

func (e *encoder) close() { e.best.close() }

func (e *encoder) headerSize(k Kind, payload int64) int64 {
	h := Header{Kind: k, ResultSize: e.target.Size, BaseSize: e.baseSize, PayloadSize: payload}
	return h.encodedSize()
}

// limit returns the largest payload of kind k that would beat the best.
func (e *encoder) limit(k Kind) int64 {
	if e.forced != 0 {
		if k == e.forced {
			return -1
		}
		return 0
	}
	if e.bestTotal == math.MaxInt64 {
		return -1
	}
	return max(0, e.bestTotal-e.headerSize(k, e.target.Size)-1)
}

func (e *encoder) newSpool(k Kind) *spool {
	return &spool{limit: e.limit(k), memMax: e.o.SpoolMemory, dir: e.o.TempDir}
}

// targetReader returns a sequential reader of the target that hashes it,
// if its hash is not known yet; call noteTarget after reading.
func (e *encoder) targetReader() *hashingReader {
	if e.haveTarget {
		return &hashingReader{r: e.target.sequential(e.ctx)}
	}
	return newHashingReader(e.target.sequential(e.ctx))
}

func (e *encoder) noteTarget(hr *hashingReader) error {
	if hr.n != e.target.Size || e.haveTarget || hr.h == nil {
		return nil
	}
	sum := hr.h.Sum()
	if !e.target.Hash.IsZero() && sum != e.target.Hash {
		return fmt.Errorf("delta: target hashes to %s, expected %s (changed while reading?)", sum.Short(), e.target.Hash.Short())
	}
	e.targetHash, e.haveTarget = sum, true
	return nil
}

func (e *encoder) noteBase(sum index.Hash) error {
	if e.haveBase {
		if sum != e.baseHash {
			return fmt.Errorf("delta: base read twice with different hashes (%s, %s): changed while encoding?", e.baseHash.Short(), sum.Short())
		}
		return nil
	}
	if e.base != nil && !e.base.Hash.IsZero() && sum != e.base.Hash {
		return fmt.Errorf("delta: base hashes to %s, expected %s (changed while reading?)", sum.Short(), e.base.Hash.Short())
	}
	e.baseHash, e.haveBase = sum, true
	return nil
}

// offer records a finished candidate and keeps it if it is the smallest.
func (e *encoder) offer(k Kind, sp *spool, t0 time.Time) {
	total := e.headerSize(k, sp.n) + sp.n
	e.res.Tried = append(e.res.Tried, Attempt{Kind: k, Size: total, Elapsed: time.Since(t0)})
	if (e.forced == 0 || e.forced == k) && total < e.bestTotal {
		e.best.close()
		e.best, e.bestKind, e.bestTotal = sp, k, total
		return
	}
	sp.close()
}

func (e *encoder) skip(k Kind, note string) {
	e.res.Tried = append(e.res.Tried, Attempt{Kind: k, Size: -1, Note: note})
}

func (e *encoder) abort(k Kind, sp *spool, t0 time.Time) {
	sp.close()
	note := "cut short: no smaller than " + e.bestKind.String()
	if e.forced != 0 {
		note = "not requested"
	}
	e.res.Tried = append(e.res.Tried, Attempt{Kind: k, Size: -1, Note: note, Elapsed: time.Since(t0)})
}

// tryBlocks runs one block match of the target against sig (nil: a
// signature of e.base built here with block size bs, 0 = automatic) and
// offers KindBlocks and KindBlocksZstd from the one op stream.
func (e *encoder) tryBlocks(sig *Signature, bs int) error {
	t0 := time.Now()
	if sig == nil {
		if bs == 0 {
			bs = e.o.BlockSize
		}
		if bs == 0 {
			bs = localBlockSize(e.base.Size)
		}
		if bs < MinBlockSize || bs > MaxBlockSize {
			return fmt.Errorf("delta: block size %d outside [%d, %d]", bs, MinBlockSize, MaxBlockSize)
		}
		s, sum, err := buildSignature(e.ctx, e.base.sequential(e.ctx), e.base.Size, bs, localStrongLen, !e.haveBase)
		if err != nil {
			return err
		}
		if !e.haveBase {
			if err := e.noteBase(sum); err != nil {
				return err
			}
		}
		sig = s
	}
	e.res.BlockSize = sig.BlockSize
	raw, zs := e.newSpool(KindBlocks), e.newSpool(KindBlocksZstd)
	rawB, zB := &branch{w: raw}, &branch{err: errOverBudget}
	if raw.limit == 0 {
		rawB.err = errOverBudget
	}
	var zenc *lazyZstd
	if zs.limit != 0 {
		zenc = &lazyZstd{out: zs, size: e.target.Size}
		zB.w, zB.err = zenc, nil
	}
	bw := bufio.NewWriterSize(fork{rawB, zB}, 64<<10)
	ow := &opWriter{w: bw}
	var sink opSink = ow
	if e.base != nil {
		sink = newRefiner(ow, *e.base)
	}
	var guard *unrelatedGuard
	if e.forced == 0 {
		guard = &unrelatedGuard{next: sink, after: max(unrelatedAfter, e.target.Size/8)}
		sink = guard
	}
	hr := e.targetReader()
	err := sig.match(e.ctx, hr, e.target.Size, sink)
	if err == nil {
		err = sink.finish()
	}
	if err == nil {
		err = bw.Flush()
	}
	if zenc != nil {
		if cerr := zenc.Close(); zB.err == nil {
			zB.err = cerr
		}
	}
	if errors.Is(err, errUnrelated) {
		raw.close()
		zs.close()
		note := fmt.Sprintf("cut short: base matched %d of the first %d bytes", guard.copied, guard.copied+guard.literal)
		e.res.Tried = append(e.res.Tried, Attempt{Kind: KindBlocks, Size: -1, Note: note, Elapsed: time.Since(t0)},
			Attempt{Kind: KindBlocksZstd, Size: -1, Note: note, Elapsed: time.Since(t0)})
		return nil
	}
	if err != nil && !errors.Is(err, errOverBudget) {
		raw.close()
		zs.close()
		return fmt.Errorf("delta: block match: %w", err)
	}
	if err == nil {
		if err := e.noteTarget(hr); err != nil {
			raw.close()
			zs.close()
			return err
		}
	}
	e.res.Copied, e.res.Literal = ow.copied, ow.literal
	for _, c := range []struct {
		k  Kind
		sp *spool
		b  *branch
	}{{KindBlocks, raw, rawB}, {KindBlocksZstd, zs, zB}} {
		switch {
		case c.b.err == nil:
			e.offer(c.k, c.sp, t0)
		case errors.Is(c.b.err, errOverBudget):
			e.abort(c.k, c.sp, t0)
		default:
			c.sp.close()
			return fmt.Errorf("delta: %s: %w", c.k, c.b.err)
		}
	}
	return nil
}

// errUnrelated stops a block match whose base does not help.
var errUnrelated = errors.New("delta: the base matches too little of the target")

// unrelatedAfter is how much of the target a block match reads before it
// may give up on a base that matches less than 1/32 of it; it also reads
// at least 1/8 of the target, so that new content at the start (a longer
// prompt recorded in front of an old one) does not end it too early.
const unrelatedAfter = 8 << 20

// unrelatedGuard passes ops on and ends the match with errUnrelated once
// `after` bytes of target have gone by with under 1/32 of them copied: an
// unrelated target (audio recorded anew, a replaced file) then costs part
// of one pass and no spool of its size.
type unrelatedGuard struct {
	next            opSink
	after           int64
	copied, literal int64
}

func (g *unrelatedGuard) copyOp(off, n int64) error {
	g.copied += n
	return g.next.copyOp(off, n)
}

func (g *unrelatedGuard) literalOp(p []byte) error {
	g.literal += int64(len(p))
	if n := g.copied + g.literal; n >= g.after && g.copied*32 < n {
		return errUnrelated
	}
	return g.next.literalOp(p)
}

func (g *unrelatedGuard) finish() error { return g.next.finish() }

// tryDict offers KindDictZstd if base and target fit DictMaxSize.
func (e *encoder) tryDict() error {
	if e.o.DictMaxSize < 0 || e.base.Size > e.o.DictMaxSize || e.target.Size > e.o.DictMaxSize {
		e.skip(KindDictZstd, fmt.Sprintf("over the %d-byte dictionary limit", max(e.o.DictMaxSize, 0)))
		return nil
	}
	if e.limit(KindDictZstd) == 0 {
		e.skip(KindDictZstd, "not requested")
		return nil
	}
	t0 := time.Now()
	br := e.base.sequential(e.ctx)
	if !e.haveBase {
		br = newHashingReader(br)
	}
	b := make([]byte, e.base.Size)
	if _, err := io.ReadFull(br, b); err != nil {
		return fmt.Errorf("delta: reading base: %w", err)
	}
	if hr, ok := br.(*hashingReader); ok {
		if err := e.noteBase(hr.h.Sum()); err != nil {
			return err
		}
	}
	tr := e.targetReader()
	t := make([]byte, e.target.Size)
	if _, err := io.ReadFull(tr, t); err != nil {
		return fmt.Errorf("delta: reading target: %w", err)
	}
	if err := e.noteTarget(tr); err != nil {
		return err
	}
	out, err := encodeDictZstd(b, t)
	if err != nil {
		return err
	}
	sp := &spool{limit: -1, mem: out, n: int64(len(out))}
	e.offer(KindDictZstd, sp, t0)
	return nil
}

// tryZstd offers KindZstd.
func (e *encoder) tryZstd() error {
	if e.limit(KindZstd) == 0 {
		e.skip(KindZstd, "not requested")
		return nil
	}
	t0 := time.Now()
	sp := e.newSpool(KindZstd)
	enc, err := newStreamEncoder(sp, e.target.Size)
	if err != nil {
		return fmt.Errorf("delta: zstd encoder: %w", err)
	}
	tr := e.targetReader()
	_, err = io.Copy(enc, tr)
	if cerr := enc.Close(); err == nil {
		err = cerr
	}
	if errors.Is(err, errOverBudget) {
		e.abort(KindZstd, sp, t0)
		return nil
	}
	if err != nil {
		sp.close()
		return fmt.Errorf("delta: zstd: %w", err)
	}
	if err := e.noteTarget(tr); err != nil {
		sp.close()
		return err
	}
	e.offer(KindZstd, sp, t0)
	return nil
}

// finish writes the header and the best payload to w.
func (e *encoder) finish(w io.Writer) (Result, error) {
	if !e.haveTarget {
		hr := e.targetReader()
		if _, err := io.Copy(io.Discard, hr); err != nil {
			return e.res, fmt.Errorf("delta: hashing target: %w", err)
		}
		if err := e.noteTarget(hr); err != nil {
			return e.res, err
		}
		if !e.haveTarget {
			return e.res, fmt.Errorf("delta: target shorter than its size %d", e.target.Size)
		}
	}
	h := Header{Kind: e.bestKind, ResultSize: e.target.Size, ResultHash: e.targetHash}
	if e.bestKind.NeedsBase() {
		h.BaseSize, h.BaseHash = e.baseSize, e.baseHash
	}
	if e.best != nil {
		h.PayloadSize = e.best.n
	} else {
		h.PayloadSize = e.target.Size
	}
	if h.PayloadSize > maxPayload(h.ResultSize) {
		return e.res, fmt.Errorf("delta: %s payload of %d bytes for a %d-byte target exceeds the format's bound", h.Kind, h.PayloadSize, h.ResultSize)
	}
	cw := &countWriter{w: w}
	if _, err := cw.Write(h.appendTo(nil)); err != nil {
		return e.res, fmt.Errorf("delta: writing header: %w", err)
	}
	if e.best != nil {
		if err := e.best.writeTo(cw); err != nil {
			return e.res, fmt.Errorf("delta: writing payload: %w", err)
		}
	} else {
		hr := e.targetReader()
		if _, err := io.Copy(cw, hr); err != nil {
			return e.res, fmt.Errorf("delta: writing raw payload: %w", err)
		}
		if hr.n != e.target.Size || (hr.h != nil && hr.h.Sum() != e.targetHash) {
			return e.res, fmt.Errorf("delta: target changed while encoding")
		}
	}
	e.res.Kind, e.res.Size = e.bestKind, cw.n
	e.res.TargetHash = e.targetHash
	if e.bestKind.NeedsBase() {
		e.res.BaseSize, e.res.BaseHash = h.BaseSize, h.BaseHash
	}
	e.res.Elapsed = time.Since(e.start)
	return e.res, nil
}
