package asteriskctl

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"strings"
)

// Limits bound what a [Reader] accepts from the wire. A message that
// exceeds a limit is an error, after which the connection cannot be resynced
// and must be closed. Zero fields take the defaults.
type Limits struct {
	// MaxLine is the longest line in bytes, terminator included
	// (default 256 KiB, minimum 64).
	MaxLine int
	// MaxFields is the most fields plus output lines in one message
	// (default 1,000,000: "dialplan show" on a big system is long).
	MaxFields int
	// MaxMessage is the most bytes in one message (default 64 MiB).
	MaxMessage int
}

// Default limits.
const (
	DefaultMaxLine    = 256 << 10
	DefaultMaxFields  = 1_000_000
	DefaultMaxMessage = 64 << 20
)

func (l Limits) withDefaults() Limits {
	if l.MaxLine <= 0 {
		l.MaxLine = DefaultMaxLine
	}
	if l.MaxLine < 64 {
		l.MaxLine = 64
	}
	if l.MaxFields <= 0 {
		l.MaxFields = DefaultMaxFields
	}
	if l.MaxMessage <= 0 {
		l.MaxMessage = DefaultMaxMessage
	}
	return l
}

// Errors of the [Reader].
var (
	ErrLineTooLong     = errors.New("AMI line too long")
	ErrMessageTooLarge = errors.New("AMI message too large")
)

// endCommand terminates the output of a legacy (Asterisk < 14) Command
// answer.
const endCommand = "--END COMMAND--"

// Reader reads AMI messages from a byte stream. It is not safe for
// concurrent use; a connection has one reader goroutine.
//
// Lines may end in "\r\n" or "\n". A message ends at an empty line, except
// the body of a legacy "Response: Follows" answer, which may contain empty
// lines and ends at "--END COMMAND--". Within a message a line is a field
// when it has a colon and the text before it is a non-empty name without
// white space or control characters (digits, '_', '-', '(', '/' … are all
// allowed, as Asterisk uses them); one space after the colon is dropped.
// Other lines are kept in Message.Output.
type Reader struct {
	br  *bufio.Reader
	lim Limits
}

// NewReader returns a Reader on r with the given limits.
func NewReader(r io.Reader, lim Limits) *Reader {
	lim = lim.withDefaults()
	return &Reader{br: bufio.NewReaderSize(r, lim.MaxLine), lim: lim}
}

// readLine returns the next line without its terminator. The returned slice
// is only valid until the next read. At EOF after a partial line it returns
// the partial line's error io.ErrUnexpectedEOF.
func (r *Reader) readLine() ([]byte, error) {
	line, err := r.br.ReadSlice('\n')
	switch {
	case err == nil:
	case errors.Is(err, bufio.ErrBufferFull):
		return nil, fmt.Errorf("%w (more than %d bytes)", ErrLineTooLong, r.lim.MaxLine)
	case errors.Is(err, io.EOF) && len(line) > 0:
		return nil, io.ErrUnexpectedEOF
	default:
		return nil, err
	}
	line = line[:len(line)-1]
	if n := len(line); n > 0 && line[n-1] == '\r' {
		line = line[:n-1]
	}
	return line, nil
}

// ReadBanner reads the greeting line ("Asterisk Call Manager/7.0.3").
func (r *Reader) ReadBanner() (string, error) {
	line, err := r.readLine()
	if err != nil {
		return "", err
	}
	return string(line), nil
}

// splitField splits a "Key: Value" line. ok is false for lines that are not
// fields (no colon, empty name, white space or control bytes in the name).
func splitField(line []byte) (key, value string, ok bool) {
	i := bytes.IndexByte(line, ':')
	if i <= 0 {
		return "", "", false
	}
	for _, c := range line[:i] {
		if c <= ' ' || c == 0x7f {
			return "", "", false
		}
	}
	v := line[i+1:]
	if len(v) > 0 && v[0] == ' ' {
		v = v[1:]
	}
	return string(line[:i]), string(v), true
}

// followsHeader reports whether key may appear as a header of a legacy
// Follows answer before its output starts.
func followsHeader(key string) bool {
	return strings.EqualFold(key, "ActionID") || strings.EqualFold(key, "Privilege") || strings.EqualFold(key, "Message")
}

// ReadMessage reads the next message, skipping empty lines between
// messages. It returns io.EOF when the stream ends cleanly between
// messages and io.ErrUnexpectedEOF when it ends inside one.
func (r *Reader) ReadMessage() (*Message, error) {
	var line []byte
	var err error
	for {
		line, err = r.readLine()
		if err != nil {
			return nil, err
		}
		if len(line) > 0 {
			break
		}
	}
	m := &Message{}
	size, count := 0, 0
	follows, outputStarted := false, false
	for {
		size += len(line) + 2
		count++
		if count > r.lim.MaxFields || size > r.lim.MaxMessage {
			return nil, fmt.Errorf("%w (limits: %d lines, %d bytes)", ErrMessageTooLarge, r.lim.MaxFields, r.lim.MaxMessage)
		}
		if follows {
			if bytes.HasSuffix(line, []byte(endCommand)) {
				if rest := line[:len(line)-len(endCommand)]; len(rest) > 0 {
					m.Output = append(m.Output, string(rest))
				}
				return m, nil
			}
			k, v, ok := splitField(line)
			if !outputStarted && ok && followsHeader(k) {
				m.Fields = append(m.Fields, Field{Key: k, Value: v})
			} else {
				outputStarted = true
				m.Output = append(m.Output, string(line))
			}
		} else {
			if k, v, ok := splitField(line); ok {
				m.Fields = append(m.Fields, Field{Key: k, Value: v})
				if strings.EqualFold(k, "Response") && strings.EqualFold(v, "Follows") {
					follows = true
				}
			} else {
				m.Output = append(m.Output, string(line))
			}
		}
		line, err = r.readLine()
		if err != nil {
			if errors.Is(err, io.EOF) {
				return nil, io.ErrUnexpectedEOF
			}
			return nil, err
		}
		if len(line) == 0 && !follows {
			return m, nil
		}
	}
}
