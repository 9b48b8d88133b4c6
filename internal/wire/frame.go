package wire

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sync"

	"github.com/klauspost/compress/zstd"
)

// Version is the protocol version written in every frame header.
const Version = 1

// Limits on what a frame may carry.
const (
	HeaderSize    = 8
	MaxFrame      = 16 << 20 // bytes of payload on the wire
	MaxDecoded    = 64 << 20 // bytes of payload after decompression
	CompressAbove = 256      // payloads larger than this are compressed, where that makes them smaller
)

const flagZstd = 1

// Errors returned by ReadFrame and Decode; all are wrapped with context.
var (
	ErrVersion   = errors.New("unsupported protocol version")
	ErrTooLarge  = errors.New("frame too large")
	ErrMalformed = errors.New("malformed frame")
)

// ErrNoItems is returned by Encode for a complete announcement (Base 0)
// whose Items are nil, not an empty list: one made to be sent in parts
// by SplitFrom, sent as it is by mistake.
var ErrNoItems = errors.New("complete announcement without its items")

// Codec encodes and decodes frames. It holds the zstd state and is safe for
// concurrent use.
type Codec struct {
	mu       sync.Mutex
	enc      *zstd.Encoder         // nil after Release, until a frame is compressed
	pools    map[Type]*decoderPool // streaming decoders by message type
	maxItems int                   // bound of an announcement's lists while it is decoded (MaxItems)
}

// newEncoder returns the encoder of a Codec.
func newEncoder() (*zstd.Encoder, error) {
	// WithLowerEncoderMem: a history of the window and one block (1.1
	// MiB), not two windows, and block buffers grown as needed: the codec
	// keeps 3.3 MiB after encoding an announcement part, not 4.4 MiB
	// (BenchmarkEncodeAnnouncePart), for the same frames at the same CPU
	enc, err := zstd.NewWriter(nil, zstd.WithEncoderLevel(zstd.SpeedDefault), zstd.WithEncoderConcurrency(1), zstd.WithWindowSize(MaxWindow), zstd.WithLowerEncoderMem(true))
	if err != nil {
		return nil, fmt.Errorf("wire: zstd encoder: %w", err)
	}
	return enc, nil
}

// NewCodec returns a Codec.
func NewCodec() (*Codec, error) {
	enc, err := newEncoder()
	if err != nil {
		return nil, err
	}
	byWindow := map[int]*decoderPool{}
	pools := map[Type]*decoderPool{}
	for t := range decodedLimit {
		w := windowLimit(t)
		if byWindow[w] == nil {
			byWindow[w] = &decoderPool{window: w}
		}
		pools[t] = byWindow[w]
	}
	return &Codec{enc: enc, pools: pools, maxItems: MaxItems}, nil
}

// Close releases the codec's resources.
func (c *Codec) Close() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.enc != nil {
		c.enc.Close()
	}
}

// Release lets go of the encoder's state: its match tables and history
// (1.4-3.3 MiB once it compressed an announcement), which it keeps for
// the codec's life otherwise. The next frame to compress makes a new
// encoder (a few hundred microseconds). An idle agent calls it: the
// frames it sends while idle (pings, pongs) are too small to compress.
func (c *Codec) Release() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.enc = nil // EncodeAll holds no goroutine or writer: nothing to close
}

// encoder returns the codec's encoder, made again after a Release.
func (c *Codec) encoder() (*zstd.Encoder, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.enc == nil {
		enc, err := newEncoder()
		if err != nil {
			return nil, err
		}
		c.enc = enc
	}
	return c.enc, nil
}

// Encode returns the frame for m.
func (c *Codec) Encode(m Message) ([]byte, error) {
	if a, ok := m.(*Announce); ok && a.Items == nil && a.Base == 0 {
		// a target reads a complete announcement without items as an
		// empty tree and would delete every file: a source's complete
		// announcement holds none until SplitFrom makes its parts' items
		return nil, fmt.Errorf("wire: encode %s of %s version %d: %w", m.Type(), a.Job, a.Version, ErrNoItems)
	}
	if d, ok := m.(*Data); ok {
		// the frame before each fetched file, written in place
		// (data_json.go); small enough never to be compressed
		if out, ok := appendData(make([]byte, HeaderSize, HeaderSize+128), d); ok && len(out)-HeaderSize <= CompressAbove {
			out[0], out[1] = Version, byte(TypeData)
			binary.BigEndian.PutUint32(out[4:], uint32(len(out)-HeaderSize))
			return out, nil
		}
	}
	payload, err := json.Marshal(m)
	if err != nil {
		return nil, fmt.Errorf("wire: encode %s: %w", m.Type(), err)
	}
	var flags byte
	if len(payload) > CompressAbove && compressible(m) {
		enc, err := c.encoder()
		if err != nil {
			return nil, fmt.Errorf("wire: encode %s: %w", m.Type(), err)
		}
		if z := enc.EncodeAll(payload, make([]byte, 0, len(payload)/2)); len(z) < len(payload) {
			payload = z
			flags |= flagZstd
		}
	}
	if len(payload) > MaxFrame {
		return nil, fmt.Errorf("wire: encode %s: %w: %d bytes > %d", m.Type(), ErrTooLarge, len(payload), MaxFrame)
	}
	out := make([]byte, HeaderSize, HeaderSize+len(payload))
	out[0], out[1], out[2] = Version, byte(m.Type()), flags
	binary.BigEndian.PutUint32(out[4:], uint32(len(payload)))
	return append(out, payload...), nil
}

// compressible reports whether compressing m can pay. A Get is mostly
// content hashes in base64: a batch of 128 files is 6,080 bytes of JSON
// that zstd takes to 4,359 (13 bytes a file), and compressing the ~800
// batches of a 100,000-file first sync cost the target 0.35 s of CPU
// (2.7 % of its profile); so a Get goes as it is.
func compressible(m Message) bool {
	_, get := m.(*Get)
	return !get
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
func (c *Codec) Read(r io.Reader) (Message, error) { return c.ReadGated(r, nil) }

// ReadGated reads one frame from r. It streams the payload through a
// bounded reader (zstd and JSON alike) and never holds more than the
// frame type's MaxPayload of it; gate, when set, sees the type and the job
// a job-scoped message names before its body is decoded, and a refusal
// reads the rest of the frame off the stream undecoded and returns an error
// wrapping ErrRefused. Any other error leaves r at an unknown position.
func (c *Codec) ReadGated(r io.Reader, gate Gate) (Message, error) {
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
	t := Type(hdr[1])
	n := binary.BigEndian.Uint32(hdr[4:])
	if n > MaxFrame {
		return nil, fmt.Errorf("wire: %w: %d bytes > %d", ErrTooLarge, n, MaxFrame)
	}
	m := newMessage(t)
	if m == nil {
		return nil, fmt.Errorf("wire: %w: unknown message type %d", ErrMalformed, t)
	}
	if int(n) > wireLimit(t) {
		return nil, fmt.Errorf("wire: %w: %s frame of %d bytes > %d", ErrTooLarge, t, n, wireLimit(t))
	}
	payload := &io.LimitedReader{R: r, N: int64(n)}
	if t == TypeData && hdr[2]&flagZstd == 0 && gate == nil {
		// the frame before each file of a fetch: read whole (at most
		// wireLimit bytes), in appendData's form without encoding/json
		buf := make([]byte, n)
		if _, err := io.ReadFull(r, buf); err != nil {
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return nil, fmt.Errorf("wire: read %d-byte payload: %w", n, err)
		}
		d := &Data{}
		if parseData(buf, d) {
			if err := d.Validate(); err != nil {
				return nil, fmt.Errorf("wire: %w: %s: %w", ErrMalformed, t, err)
			}
			return d, nil
		}
		payload = &io.LimitedReader{R: bytes.NewReader(buf), N: int64(n)}
	}
	var body io.Reader = payload
	if hdr[2]&flagZstd != 0 {
		pool := c.pools[t]
		dec, err := pool.get()
		if err != nil {
			return nil, fmt.Errorf("wire: zstd decoder: %w", err)
		}
		defer pool.put(dec)
		if err := dec.Reset(payload); err != nil {
			return nil, fmt.Errorf("wire: %w: %s payload: zstd: %v", ErrMalformed, t, err)
		}
		body = zstdErrs{dec}
	}
	body = &capReader{r: body, n: MaxPayload(t), t: t}
	if jobScoped(t) {
		job, rest, err := readJobPrefix(body)
		if err != nil {
			return nil, fmt.Errorf("wire: %w: %s: %w", ErrMalformed, t, err)
		}
		if gate != nil {
			if err := gate(t, job); err != nil {
				if derr := drain(payload); derr != nil {
					return nil, fmt.Errorf("wire: read refused %s: %w", t, derr)
				}
				return nil, fmt.Errorf("wire: %s for job %q: %w: %w", t, truncate(job, 40), ErrRefused, err)
			}
		}
		body = rest
	} else if gate != nil {
		if err := gate(t, ""); err != nil {
			if derr := drain(payload); derr != nil {
				return nil, fmt.Errorf("wire: read refused %s: %w", t, derr)
			}
			return nil, fmt.Errorf("wire: %s: %w: %w", t, ErrRefused, err)
		}
	}
	var err error
	if a, ok := m.(*Announce); ok {
		el := &elemReader{r: body, max: maxElem}
		dec := json.NewDecoder(el)
		dec.DisallowUnknownFields()
		if err = decodeAnnounce(dec, a, c.maxItems, el.start); err == nil {
			el.max = 0
			if _, terr := dec.Token(); terr != io.EOF {
				if errors.Is(terr, ErrTooLarge) {
					return nil, terr
				}
				return nil, fmt.Errorf("wire: %w: %s: trailing data", ErrMalformed, t)
			}
		}
	} else {
		dec := json.NewDecoder(body)
		dec.DisallowUnknownFields()
		if err = dec.Decode(m); err == nil {
			if _, terr := dec.Token(); terr != io.EOF {
				if errors.Is(terr, ErrTooLarge) {
					return nil, terr
				}
				return nil, fmt.Errorf("wire: %w: %s: trailing data", ErrMalformed, t)
			}
		}
	}
	if err != nil {
		if errors.Is(err, ErrTooLarge) {
			return nil, err
		}
		if errors.Is(err, io.ErrUnexpectedEOF) && payload.N > 0 {
			return nil, fmt.Errorf("wire: read %d-byte payload: %w", n, err)
		}
		return nil, fmt.Errorf("wire: %w: %s: %v", ErrMalformed, t, err)
	}
	if k, err := io.Copy(io.Discard, payload); err != nil || payload.N > 0 {
		if err == nil {
			err = io.ErrUnexpectedEOF
		}
		return nil, fmt.Errorf("wire: read %d-byte payload: %w", n, err)
	} else if k > 0 {
		return nil, fmt.Errorf("wire: %w: %s: %d bytes after the payload", ErrMalformed, t, k)
	}
	if err := m.Validate(); err != nil {
		return nil, fmt.Errorf("wire: %w: %s: %w", ErrMalformed, t, err)
	}
	return m, nil
}

// readJobPrefix reads the start of a job-scoped payload, which must be
// {"job":"NAME" (the encoder writes the job first), and returns NAME and a
// reader of the whole payload again.
func readJobPrefix(r io.Reader) (string, io.Reader, error) {
	const open = `{"job":"`
	buf := make([]byte, 0, len(open)+MaxNameLen+1)
	var one [1]byte
	for {
		if _, err := io.ReadFull(r, one[:]); err != nil {
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return "", nil, fmt.Errorf("reading the job name: %w", err)
		}
		buf = append(buf, one[0])
		if len(buf) <= len(open) {
			if buf[len(buf)-1] != open[len(buf)-1] {
				return "", nil, errors.New(`payload does not start with {"job":"`)
			}
			continue
		}
		if one[0] == '"' {
			job := string(buf[len(open) : len(buf)-1])
			if err := checkName("job", job); err != nil {
				return "", nil, err
			}
			return job, io.MultiReader(bytes.NewReader(buf), r), nil
		}
		if len(buf) > len(open)+MaxNameLen {
			return "", nil, errors.New("job name too long")
		}
	}
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

// zstdErrs names zstd as the source of its reader's errors.
type zstdErrs struct{ r io.Reader }

func (z zstdErrs) Read(p []byte) (int, error) {
	n, err := z.r.Read(p)
	if err != nil && err != io.EOF && !errors.Is(err, ErrTooLarge) {
		err = fmt.Errorf("zstd: %w", err)
	}
	return n, err
}

// drain reads the rest of a frame's payload off the stream; a stream that
// ends first is io.ErrUnexpectedEOF.
func drain(payload *io.LimitedReader) error {
	if _, err := io.Copy(io.Discard, payload); err != nil {
		return err
	}
	if payload.N > 0 {
		return io.ErrUnexpectedEOF
	}
	return nil
}
