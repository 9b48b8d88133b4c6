package delta

import (
	"bytes"
	"context"
	"errors"
	"io"
	"math"
	"math/bits"

	"github.com/zeebo/xxh3"
)

// sigTable finds blocks of a Signature by weak checksum: a bitmap filter
// (16 bits a block, so most positions that match nothing cost one cache
// line) in front of a chained hash table.
type sigTable struct {
	filter []uint64
	fshift uint
	head   []int32 // bucket → block+1, 0 = empty
	next   []int32 // block → next block+1 in the bucket
	bshift uint
}

// maxChain bounds the blocks examined per lookup, so that adversarial
// content with many equal weak checksums cannot make matching quadratic.
const maxChain = 32

const fibMul = 0x9E3779B97F4A7C15

// fastPathStrongLen is the shortest strong hash trusted without the weak
// checksum (64 bits; sender-side signatures keep 8 bytes).
const fastPathStrongLen = 8

// table returns s's lookup table, building it on first use.
func (s *Signature) table() *sigTable {
	if s.tbl != nil {
		return s.tbl
	}
	n := s.fullBlocks()
	lb := bits.Len(uint(max(n, 1) - 1)) // log2 of buckets (≥ n)
	lf := lb + 4                        // log2 of filter bits
	lf = max(lf, 12)
	t := &sigTable{
		filter: make([]uint64, (1<<lf)/64),
		fshift: uint(64 - lf),
		head:   make([]int32, 1<<lb),
		next:   make([]int32, n),
		bshift: uint(64 - lb),
	}
	if lb == 0 {
		t.bshift = 63 // one bucket: hv>>63 is 0 or 1; head has 1 entry, so mask below
	}
	for i := 0; i < n; i++ {
		hv := uint64(s.weak[i]) * fibMul
		b := t.bucket(hv)
		t.next[i] = t.head[b]
		t.head[b] = int32(i + 1)
		f := hv >> t.fshift
		t.filter[f>>6] |= 1 << (f & 63)
	}
	s.tbl = t
	return t
}

func (t *sigTable) bucket(hv uint64) uint64 { return (hv >> t.bshift) & uint64(len(t.head)-1) }

// find returns the full block whose checksums match win (weak sum w), or
// -1. It tries prefer first, so that runs of consecutive blocks continue;
// among other blocks with equal checksums (a base that repeats itself) it
// takes the one nearest to the base offset near, so that copies stay
// short to encode and the block after them is the next one preferred.
func (s *Signature) find(t *sigTable, w uint32, win []byte, prefer int, near int64) int {
	var strong [16]byte
	have := false
	if prefer >= 0 && prefer < s.fullBlocks() && s.weak[prefer] == w {
		strong, have = xxh3.Hash128(win).Bytes(), true
		if bytes.Equal(s.strongOf(prefer), strong[:s.StrongLen]) {
			return prefer
		}
	}
	best, bestDist := -1, int64(math.MaxInt64)
	for j, k := t.head[t.bucket(uint64(w)*fibMul)], 0; j != 0 && k < maxChain; j, k = t.next[j-1], k+1 {
		b := int(j - 1)
		if s.weak[b] != w {
			continue
		}
		if !have {
			strong, have = xxh3.Hash128(win).Bytes(), true
		}
		if !bytes.Equal(s.strongOf(b), strong[:s.StrongLen]) {
			continue
		}
		d := int64(b)*int64(s.BlockSize) - near
		if d < 0 {
			d = -d
		}
		if d < bestDist {
			best, bestDist = b, d
		}
	}
	return best
}

// opSink receives the ops of a delta in order.
type opSink interface {
	copyOp(off, n int64) error
	literalOp(p []byte) error
	finish() error
}

// match reads the target from r to EOF and describes it to sink as copies
// of s's blocks and literals, rsync style: at every byte offset the weak
// checksum of the window is rolled forward; a weak hit is confirmed with
// the strong hash, and a match jumps a whole block. Memory: one buffer of
// max(4 blocks, min(1 MiB, size)) besides the signature; size is a hint of
// the target's length.
func (s *Signature) match(ctx context.Context, r io.Reader, size int64, sink opSink) error {
	B := s.BlockSize
	t := s.table()
	pow := rollPow(B)
	buf := make([]byte, max(4*B, int(min(1<<20, max(size, 0)+1))))
	r = ctxReader{ctx: ctx, r: r}
	var (
		end, pos, lit int
		eof, have     bool
		h             uint64
		prefer        = -1
	)
	fill := func() error {
		if lit < pos {
			if err := sink.literalOp(buf[lit:pos]); err != nil {
				return err
			}
		}
		end = copy(buf, buf[pos:end])
		pos, lit = 0, 0
		for end < len(buf) && !eof {
			n, err := r.Read(buf[end:])
			end += n
			if errors.Is(err, io.EOF) {
				eof = true
			} else if err != nil {
				return err
			}
		}
		return nil
	}
	nFull := s.fullBlocks()
	for nFull > 0 {
		if !eof && end-pos <= B {
			if err := fill(); err != nil {
				return err
			}
		}
		if end-pos < B {
			break
		}
		if !have && prefer >= 0 && prefer < nFull && s.StrongLen >= fastPathStrongLen {
			// Fast path in unchanged runs: try the block after the last
			// match by its strong hash alone, before paying for a weak sum.
			st := xxh3.Hash128(buf[pos : pos+B]).Bytes()
			if bytes.Equal(s.strongOf(prefer), st[:s.StrongLen]) {
				if lit < pos {
					if err := sink.literalOp(buf[lit:pos]); err != nil {
						return err
					}
				}
				if err := sink.copyOp(int64(prefer)*int64(B), int64(B)); err != nil {
					return err
				}
				pos += B
				lit = pos
				prefer++
				continue
			}
		}
		if !have {
			h, have = rollSum(buf[pos:pos+B]), true
		}
		matched := false
		for {
			w := weakOf(h)
			f := (uint64(w) * fibMul) >> t.fshift
			if t.filter[f>>6]&(1<<(f&63)) != 0 {
				if b := s.find(t, w, buf[pos:pos+B], prefer, int64(prefer)*int64(B)); b >= 0 {
					if lit < pos {
						if err := sink.literalOp(buf[lit:pos]); err != nil {
							return err
						}
					}
					if err := sink.copyOp(int64(b)*int64(B), int64(B)); err != nil {
						return err
					}
					pos += B
					lit, prefer, have, matched = pos, b+1, false, true
					break
				}
			}
			if pos+B >= end {
				break
			}
			h = rollOut(h, pow, buf[pos], buf[pos+B])
			pos++
		}
		if !matched && eof {
			break
		}
	}
	// Read what is left (no full block to match against, or at EOF).
	for !eof {
		// Everything before the last block-length is literal; keep that
		// last part for the short-block check below.
		pos = max(lit, end-B)
		if err := fill(); err != nil {
			return err
		}
	}
	// The base's short last block can only match the target's tail.
	if last := s.Blocks() - 1; last >= nFull && last >= 0 {
		ll := int(s.BaseSize - int64(nFull)*int64(B))
		if end-lit >= ll {
			win := buf[end-ll : end]
			st := xxh3.Hash128(win).Bytes()
			if weakOf(rollSum(win)) == s.weak[last] && bytes.Equal(s.strongOf(last), st[:s.StrongLen]) {
				if lit < end-ll {
					if err := sink.literalOp(buf[lit : end-ll]); err != nil {
						return err
					}
				}
				if err := sink.copyOp(int64(nFull)*int64(B), int64(ll)); err != nil {
					return err
				}
				lit = end
			}
		}
	}
	if lit < end {
		return sink.literalOp(buf[lit:end])
	}
	return nil
}
