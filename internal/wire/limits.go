package wire

import (
	"errors"
	"fmt"
	"io"
	"sync"

	"github.com/klauspost/compress/zstd"
)

// Bounds per message type: the most payload bytes a frame of the type may
// decode to. Everything but an announcement is small; an announcement is
// bounded by MaxDecoded and, while it is decoded, by its item count
// (MaxItems items, MaxItems removed paths, MaxItems version counters), so
// that memory grows with a real index, not with what a frame claims.
var decodedLimit = map[Type]int{
	TypeHello:        1 << 10,
	TypePing:         256,
	TypePong:         256,
	TypeResult:       32 << 10, // a 4 KiB reason, JSON-escaped
	TypeError:        32 << 10,
	TypeGet:          32 << 10, // a path of up to 4 KiB, JSON-escaped
	TypeData:         1 << 10,
	TypeRowsHave:     1 << 10,
	TypeState:        1 << 20,
	TypeRowsAnnounce: 4 << 20,
	TypeAnnounce:     MaxDecoded,
	TypeRelay:        24 << 20, // one frame of at most MaxFrame bytes, base64 in JSON
	TypeOffer:        2 << 20,  // MaxOfferItems items with paths of up to 4 KiB, JSON-escaped
	TypeWake:         256,
}

// MaxPayload returns the most bytes a payload of type t may decode to, 0
// for an unknown type.
func MaxPayload(t Type) int { return decodedLimit[t] }

// wireLimit is the most payload bytes a frame of type t may carry on the
// wire: its decoded limit plus zstd's worst-case overhead.
func wireLimit(t Type) int {
	d := decodedLimit[t]
	return min(MaxFrame, d+d/64+1024)
}

// MaxWindow is the largest zstd window a frame may ask for: a decoder
// allocates it before it decodes a byte, so a hostile frame's claim costs
// at most this much (Codec encodes with this window).
const MaxWindow = 1 << 20

// windowLimit is the largest zstd window a payload of type t may ask for.
func windowLimit(t Type) int {
	d := decodedLimit[t]
	w := zstd.MinWindowSize
	for w < d && w < MaxWindow {
		w <<= 1
	}
	return w
}

// ErrRefused is returned by ReadGated for a frame its Gate refused: the
// frame was read off the stream without decoding its body, and the next
// frame can be read.
var ErrRefused = errors.New("message refused")

// Gate decides whether the body of a frame is decoded: t is its type, job
// the job it names (for Announce, Result, RowsAnnounce, RowsHave, Get,
// Relay, Offer and Wake, read from the start of the payload before
// anything else), "" for the other types. A non-nil error refuses the
// frame.
type Gate func(t Type, job string) error

// jobScoped reports whether messages of type t name a job first.
func jobScoped(t Type) bool {
	switch t {
	case TypeAnnounce, TypeResult, TypeRowsAnnounce, TypeRowsHave, TypeGet, TypeRelay, TypeOffer, TypeWake:
		return true
	}
	return false
}

// capReader reads at most n bytes from r; one more is ErrTooLarge.
type capReader struct {
	r io.Reader
	n int
	t Type
}

func (c *capReader) Read(p []byte) (int, error) {
	if c.n <= 0 {
		var one [1]byte
		for {
			k, err := c.r.Read(one[:])
			if k > 0 {
				return 0, fmt.Errorf("wire: %w: %s payload decodes to more than %d bytes", ErrTooLarge, c.t, MaxPayload(c.t))
			}
			if err != nil {
				return 0, err
			}
		}
	}
	if len(p) > c.n+1 {
		p = p[:c.n+1]
	}
	k, err := c.r.Read(p)
	if k > c.n {
		return 0, fmt.Errorf("wire: %w: %s payload decodes to more than %d bytes", ErrTooLarge, c.t, MaxPayload(c.t))
	}
	c.n -= k
	return k, err
}

// decoderPool keeps streaming zstd decoders of one window limit; each
// decodes synchronously (no goroutines) and at most its limit of window.
type decoderPool struct {
	window int
	pool   sync.Pool
}

func (p *decoderPool) get() (*zstd.Decoder, error) {
	if d, ok := p.pool.Get().(*zstd.Decoder); ok {
		return d, nil
	}
	return zstd.NewReader(nil, zstd.WithDecoderConcurrency(1), zstd.WithDecoderLowmem(true),
		zstd.WithDecoderMaxWindow(uint64(p.window)), zstd.WithDecoderMaxMemory(uint64(max(p.window, MaxDecoded))))
}

func (p *decoderPool) put(d *zstd.Decoder) {
	d.Reset(nil)
	p.pool.Put(d)
}
