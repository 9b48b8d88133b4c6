package amisim

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"strings"
)

// Header is one "Key: Value" line.
type Header struct {
	Key   string
	Value string
}

// H is shorthand for building headers: H("Module", "pbx_config.so").
func H(key, value string) Header { return Header{Key: key, Value: value} }

// message is a parsed action.
type message []Header

func (m message) get(key string) string {
	for _, h := range m {
		if strings.EqualFold(h.Key, key) {
			return h.Value
		}
	}
	return ""
}

// limits for what clients send.
const (
	maxActionLine    = 64 << 10
	maxActionHeaders = 1024
)

var errTooLarge = errors.New("amisim: action too large")

// readAction reads one action: lines up to an empty line. Empty lines
// before it are skipped. Lines without a colon are ignored, as Asterisk
// does.
func readAction(br *bufio.Reader) (message, error) {
	var m message
	for {
		line, err := br.ReadSlice('\n')
		if errors.Is(err, bufio.ErrBufferFull) {
			return nil, errTooLarge
		}
		if err != nil {
			return nil, err
		}
		line = bytes.TrimRight(line, "\r\n")
		if len(line) == 0 {
			if len(m) == 0 {
				continue
			}
			return m, nil
		}
		k, v, ok := bytes.Cut(line, []byte(":"))
		if !ok {
			continue
		}
		if len(m) >= maxActionHeaders {
			return nil, errTooLarge
		}
		m = append(m, Header{Key: string(bytes.TrimSpace(k)), Value: string(bytes.TrimLeft(v, " "))})
	}
}

// reply accumulates the bytes of an answer: a response and any events.
type reply struct {
	bytes.Buffer
}

// msg writes one message: the headers, then an empty line.
func (r *reply) msg(hs ...Header) {
	for _, h := range hs {
		fmt.Fprintf(r, "%s: %s\r\n", h.Key, h.Value)
	}
	r.WriteString("\r\n")
}

// response writes "Response: status", the ActionID when there is one, then
// the headers, as astman_send_response does.
func (r *reply) response(id, status string, hs ...Header) {
	all := make([]Header, 0, len(hs)+2)
	all = append(all, H("Response", status))
	if id != "" {
		all = append(all, H("ActionID", id))
	}
	r.msg(append(all, hs...)...)
}

func (r *reply) success(id, message string, hs ...Header) {
	r.response(id, "Success", append([]Header{H("Message", message)}, hs...)...)
}

func (r *reply) error(id, message string) {
	r.response(id, "Error", H("Message", message))
}
