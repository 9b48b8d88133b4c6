package delta

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"

	"github.com/zeebo/xxh3"

	"pbxsync/internal/index"
)

// Version is the delta format version this package writes and reads.
const Version = 1

const deltaMagic = "PBXD"

// Kind is the encoding of a delta's payload.
type Kind uint8

// The encodings. Kinds from KindDictZstd on need the base to decode.
const (
	// KindRaw: the payload is the result itself.
	KindRaw Kind = 1
	// KindZstd: the payload is one zstd stream of the result.
	KindZstd Kind = 2
	// KindDictZstd: the payload is one zstd frame of the result, made with
	// the whole base as a raw dictionary (like zstd --patch-from).
	KindDictZstd Kind = 3
	// KindBlocks: the payload is an op stream (copy from base, literal).
	KindBlocks Kind = 4
	// KindBlocksZstd: the payload is the KindBlocks op stream, compressed
	// as one zstd stream.
	KindBlocksZstd Kind = 5
)

// String returns the kind's short name ("raw", "zstd", "dict-zstd",
// "blocks", "blocks-zstd").
func (k Kind) String() string {
	switch k {
	case KindRaw:
		return "raw"
	case KindZstd:
		return "zstd"
	case KindDictZstd:
		return "dict-zstd"
	case KindBlocks:
		return "blocks"
	case KindBlocksZstd:
		return "blocks-zstd"
	}
	return fmt.Sprintf("kind(%d)", uint8(k))
}

func (k Kind) valid() bool { return k >= KindRaw && k <= KindBlocksZstd }

// NeedsBase reports whether decoding k reads the base.
func (k Kind) NeedsBase() bool { return k >= KindDictZstd && k <= KindBlocksZstd }

// Header is the fixed part of a delta, read before any output is produced.
type Header struct {
	Kind        Kind
	ResultSize  int64      // length of the result
	ResultHash  index.Hash // BLAKE3-256 of the result
	BaseSize    int64      // length of the base (kinds that need one; else 0)
	BaseHash    index.Hash // BLAKE3-256 of the base (kinds that need one; else zero)
	PayloadSize int64      // length of the payload that follows the header
}

// maxPayload bounds the payload of a result of n bytes. No encoding this
// package writes comes near it (an op describes at least one result byte
// in at most 21 bytes, but the encoders emit few short ops, and zstd adds
// a few bytes per 128 KiB); it bounds how much input a forged header can
// make Patch read.
func maxPayload(n int64) int64 { return 2*n + 1<<20 }

// maxVarint is the bound on varint lengths (10 bytes for 64 bits).
const maxVarint = binary.MaxVarintLen64

// maxHeaderSize bounds the encoded header.
const maxHeaderSize = len(deltaMagic) + 3 + 3*maxVarint + 2*index.HashSize + 4

// appendHeader appends the encoding of h to b.
func (h *Header) appendTo(b []byte) []byte {
	start := len(b)
	b = append(b, deltaMagic...)
	b = append(b, Version, byte(h.Kind), 0)
	b = binary.AppendUvarint(b, uint64(h.ResultSize))
	b = append(b, h.ResultHash[:]...)
	if h.Kind.NeedsBase() {
		b = binary.AppendUvarint(b, uint64(h.BaseSize))
		b = append(b, h.BaseHash[:]...)
	}
	b = binary.AppendUvarint(b, uint64(h.PayloadSize))
	return binary.LittleEndian.AppendUint32(b, uint32(xxh3.Hash(b[start:])))
}

// encodedSize returns the length of h's encoding.
func (h *Header) encodedSize() int64 {
	var buf [maxHeaderSize]byte
	return int64(len(h.appendTo(buf[:0])))
}

// headerReader reads a header one byte at a time so that it never consumes
// payload bytes, and keeps what it read for the checksum.
type headerReader struct {
	r   io.Reader
	buf []byte
	err error
}

func (h *headerReader) ReadByte() (byte, error) {
	if h.err != nil {
		return 0, h.err
	}
	if len(h.buf) >= maxHeaderSize {
		h.err = corruptf("header longer than %d bytes", maxHeaderSize)
		return 0, h.err
	}
	var b [1]byte
	if _, err := io.ReadFull(h.r, b[:]); err != nil {
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			h.err = corruptf("header truncated after %d bytes", len(h.buf))
		} else {
			h.err = fmt.Errorf("delta: reading header: %w", err)
		}
		return 0, h.err
	}
	h.buf = append(h.buf, b[0])
	return b[0], nil
}

func (h *headerReader) bytes(n int) []byte {
	for range n {
		h.ReadByte()
	}
	if h.err != nil {
		return nil
	}
	return h.buf[len(h.buf)-n:]
}

func (h *headerReader) size(what string) int64 {
	v, err := binary.ReadUvarint(h)
	if h.err != nil {
		return 0
	}
	if err != nil || v > 1<<62 {
		h.err = corruptf("header %s: bad varint", what)
		return 0
	}
	return int64(v)
}

// ReadHeader reads and checks a delta header from r, consuming exactly its
// bytes: the payload follows. It returns ErrCorrupt for a damaged header
// and ErrUnsupported for a version or kind it does not know.
func ReadHeader(r io.Reader) (Header, error) {
	var h Header
	hr := &headerReader{r: r}
	m := hr.bytes(len(deltaMagic) + 3)
	if hr.err != nil {
		return h, hr.err
	}
	if string(m[:4]) != deltaMagic {
		return h, corruptf("bad magic %q", m[:4])
	}
	if m[4] != Version {
		return h, fmt.Errorf("%w: format version %d (this build reads %d)", ErrUnsupported, m[4], Version)
	}
	h.Kind = Kind(m[5])
	if !h.Kind.valid() {
		return h, fmt.Errorf("%w: encoding kind %d", ErrUnsupported, m[5])
	}
	if m[6] != 0 {
		return h, fmt.Errorf("%w: header flags %#x", ErrUnsupported, m[6])
	}
	h.ResultSize = hr.size("result size")
	copy(h.ResultHash[:], hr.bytes(index.HashSize))
	if h.Kind.NeedsBase() {
		h.BaseSize = hr.size("base size")
		copy(h.BaseHash[:], hr.bytes(index.HashSize))
	}
	h.PayloadSize = hr.size("payload size")
	if hr.err != nil {
		return h, hr.err
	}
	want := uint32(xxh3.Hash(hr.buf))
	sum := hr.bytes(4)
	if hr.err != nil {
		return h, hr.err
	}
	if got := binary.LittleEndian.Uint32(sum); got != want {
		return h, corruptf("header checksum %08x, computed %08x", got, want)
	}
	if h.Kind == KindRaw && h.PayloadSize != h.ResultSize {
		return h, corruptf("raw payload of %d bytes for a result of %d", h.PayloadSize, h.ResultSize)
	}
	if h.PayloadSize > maxPayload(h.ResultSize) {
		return h, corruptf("payload of %d bytes for a result of %d", h.PayloadSize, h.ResultSize)
	}
	return h, nil
}
