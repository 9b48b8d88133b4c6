package wire

import (
	"fmt"
	"regexp"
)

// Type identifies a message in a frame header.
type Type uint8

// The message types.
const (
	TypeHello    Type = 1
	TypeAnnounce Type = 2
	TypeResult   Type = 3
	TypePing     Type = 4
	TypePong     Type = 5
	TypeState    Type = 6
	TypeGet      Type = 7
	TypeData     Type = 8
	TypeError    Type = 9
)

// String names the type for logs and errors.
func (t Type) String() string {
	switch t {
	case TypeHello:
		return "Hello"
	case TypeAnnounce:
		return "Announce"
	case TypeResult:
		return "Result"
	case TypePing:
		return "Ping"
	case TypePong:
		return "Pong"
	case TypeState:
		return "State"
	case TypeGet:
		return "Get"
	case TypeData:
		return "Data"
	case TypeError:
		return "Error"
	case TypeRowsAnnounce:
		return "RowsAnnounce"
	case TypeRowsHave:
		return "RowsHave"
	case TypeRelay:
		return "Relay"
	case TypeOffer:
		return "Offer"
	case TypeWake:
		return "Wake"
	}
	return fmt.Sprintf("type(%d)", uint8(t))
}

// Message is one decoded, validated message.
type Message interface {
	Type() Type
	// Validate reports the first field that a peer must not send.
	Validate() error
}

func newMessage(t Type) Message {
	switch t {
	case TypeHello:
		return &Hello{}
	case TypeAnnounce:
		return &Announce{}
	case TypeResult:
		return &Result{}
	case TypePing:
		return &Ping{}
	case TypePong:
		return &Pong{}
	case TypeState:
		return &State{}
	case TypeGet:
		return &Get{}
	case TypeData:
		return &Data{}
	case TypeError:
		return &Error{}
	case TypeRowsAnnounce:
		return &RowsAnnounce{}
	case TypeRowsHave:
		return &RowsHave{}
	case TypeRelay:
		return &Relay{}
	case TypeOffer:
		return &Offer{}
	case TypeWake:
		return &Wake{}
	}
	return nil
}

// Bounds on strings in messages.
const (
	MaxNameLen   = 128
	MaxReasonLen = 4096
	MaxItems     = 1 << 20
)

var nameRE = regexp.MustCompile(`^[A-Za-z0-9_.-]{1,128}$`)

func checkName(field, s string) error {
	if !nameRE.MatchString(s) {
		return fmt.Errorf("%s %q: want 1-%d characters of [A-Za-z0-9_.-]", field, truncate(s, 40), MaxNameLen)
	}
	return nil
}

func checkText(field, s string, max int) error {
	if len(s) > max {
		return fmt.Errorf("%s: %d bytes > %d", field, len(s), max)
	}
	return nil
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
