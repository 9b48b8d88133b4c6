package remotemon

import (
	"time"

	"github.com/quic-go/quic-go"

	"pbxsync/internal/wire"
)

// Stream is one transfer stream to or from a peer.
type Stream struct {
	s     *quic.Stream
	codec *wire.Codec
}

// Read reads raw bytes from the stream.
func (s *Stream) Read(p []byte) (int, error) { return s.s.Read(p) }

// Write writes raw bytes to the stream.
func (s *Stream) Write(p []byte) (int, error) { return s.s.Write(p) }

// ReadMessage reads one frame.
func (s *Stream) ReadMessage() (wire.Message, error) { return s.codec.Read(s.s) }

// WriteMessage writes one frame.
func (s *Stream) WriteMessage(m wire.Message) error { return s.codec.Write(s.s, m) }

// Close ends the write side cleanly.
func (s *Stream) Close() error { return s.s.Close() }

// Abort cancels both directions; the peer sees an error.
func (s *Stream) Abort() {
	s.s.CancelRead(1)
	s.s.CancelWrite(1)
}

// SetDeadline bounds the next reads and writes.
func (s *Stream) SetDeadline(t time.Time) error {
	s.s.SetReadDeadline(t)
	return s.s.SetWriteDeadline(t)
}
