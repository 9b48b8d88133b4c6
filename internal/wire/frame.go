package wire

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"

	"github.com/klauspost/compress/zstd"
)

// Version is the protocol version written in every frame header.
const Version = 1

// Limits on what a frame may carry.
const (
	HeaderSize    = 8
	MaxFrame      = 16 << 20 // bytes of payload on the wire
	MaxDecoded    = 64 << 20 // bytes of payload after decompression
	CompressAbove = 2048     // payloads larger than this are compressed
)

const flagZstd = 1

// Errors returned by ReadFrame and Decode; all are wrapped with context.
var (
	ErrVersion   = errors.New("unsupported protocol version")
	ErrTooLarge  = errors.New("frame too large")
	ErrMalformed = errors.New("malformed frame")
)

// Codec encodes and decodes frames. It holds the zstd state and is safe for
// concurrent use.
type Codec struct {
	enc *zstd.Encoder
	dec *zstd.Decoder
}

// NewCodec returns a Codec.
func NewCodec() (*Codec, error) {
	enc, err := zstd.NewWriter(nil, zstd.WithEncoderLevel(zstd.SpeedDefault), zstd.WithEncoderConcurrency(1))
	if err != nil {
		return nil, fmt.Errorf("wire: zstd encoder: %w", err)
	}
	dec, err := zstd.NewReader(nil, zstd.WithDecoderMaxMemory(MaxDecoded), zstd.WithDecoderConcurrency(1), zstd.WithDecoderMaxWindow(MaxDecoded))
	if err != nil {
		return nil, fmt.Errorf("wire: zstd decoder: %w", err)
	}
	return &Codec{enc: enc, dec: dec}, nil
}

// Close releases the codec's resources.
func (c *Codec) Close() {
	c.enc.Close()
	c.dec.Close()
}

// Encode returns the frame for m.
func (c *Codec) Encode(m Message) ([]byte, error) {
	payload, err := json.Marshal(m)
	if err != nil {
		return nil, fmt.Errorf("wire: encode %s: %w", m.Type(), err)
	}
	var flags byte
	if len(payload) > CompressAbove {
		payload = c.enc.EncodeAll(payload, make([]byte, 0, len(payload)/4))
		flags |= flagZstd
	}
	if len(payload) > MaxFrame {
		return nil, fmt.Errorf("wire: encode %s: %w: %d bytes > %d", m.Type(), ErrTooLarge, len(payload), MaxFrame)
	}
	out := make([]byte, HeaderSize, HeaderSize+len(payload))
	out[0], out[1], out[2] = Version, byte(m.Type()), flags
	binary.BigEndian.PutUint32(out[4:], uint32(len(payload)))
	return append(out, payload...), nil
}

// Write encodes m and writes it to w as one frame.
func (c *Codec) Write(w io.Writer, m Message) error {
	b, err := c.Encode(m)
	if err != nil {
		return err
	}
	if _, err := w.Write(b); err != nil {
		return fmt.Errorf("wire: write %s: %w", m.Type(), err)
	}
	return nil
}

// Read reads one frame from r and returns its validated message.
func (c *Codec) Read(r io.Reader) (Message, error) {
	var hdr [HeaderSize]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return nil, err // io.EOF at a frame boundary is a clean end
	}
	if hdr[0] != Version {
		return nil, fmt.Errorf("wire: %w %d (this agent speaks %d)", ErrVersion, hdr[0], Version)
	}
	if hdr[2]&^flagZstd != 0 || hdr[3] != 0 {
		return nil, fmt.Errorf("wire: %w: unknown flags %#x %#x", ErrMalformed, hdr[2], hdr[3])
	}
	n := binary.BigEndian.Uint32(hdr[4:])
	if n > MaxFrame {
		return nil, fmt.Errorf("wire: %w: %d bytes > %d", ErrTooLarge, n, MaxFrame)
	}
	payload := make([]byte, n)
	if _, err := io.ReadFull(r, payload); err != nil {
		return nil, fmt.Errorf("wire: read %d-byte payload: %w", n, err)
	}
	return c.decode(Type(hdr[1]), hdr[2], payload)
}

// Decode decodes one complete frame held in b (header and payload).
func (c *Codec) Decode(b []byte) (Message, error) {
	if len(b) < HeaderSize {
		return nil, fmt.Errorf("wire: %w: %d bytes is shorter than a header", ErrMalformed, len(b))
	}
	m, err := c.Read(bytes.NewReader(b))
	if err != nil {
		if errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) {
			return nil, fmt.Errorf("wire: %w: truncated", ErrMalformed)
		}
		return nil, err
	}
	return m, nil
}

func (c *Codec) decode(t Type, flags byte, payload []byte) (Message, error) {
	if flags&flagZstd != 0 {
		out, err := c.dec.DecodeAll(payload, nil)
		if err != nil {
			return nil, fmt.Errorf("wire: %w: %s payload: zstd: %v", ErrMalformed, t, err)
		}
		if len(out) > MaxDecoded {
			return nil, fmt.Errorf("wire: %w: %s payload decompresses to %d bytes", ErrTooLarge, t, len(out))
		}
		payload = out
	}
	m := newMessage(t)
	if m == nil {
		return nil, fmt.Errorf("wire: %w: unknown message type %d", ErrMalformed, t)
	}
	dec := json.NewDecoder(bytes.NewReader(payload))
	dec.DisallowUnknownFields()
	if err := dec.Decode(m); err != nil {
		return nil, fmt.Errorf("wire: %w: %s: %v", ErrMalformed, t, err)
	}
	if dec.More() {
		return nil, fmt.Errorf("wire: %w: %s: trailing data", ErrMalformed, t)
	}
	if err := m.Validate(); err != nil {
		return nil, fmt.Errorf("wire: %w: %s: %w", ErrMalformed, t, err)
	}
	return m, nil
}
