package asteriskctl

import (
	"bytes"
	"fmt"
	"log/slog"
	"strings"
)

// Field is one "Key: Value" line of an AMI message. Keys are compared
// case-insensitively, as Asterisk does.
type Field struct {
	Key   string
	Value string
}

// Message is one AMI message: an action we send, or a response or event
// Asterisk sends. Fields keep their wire order and may repeat (for example
// the "Output" lines of a Command response since Asterisk 14).
type Message struct {
	Fields []Field
	// Output holds raw text lines that are not "Key: Value" fields: the body
	// of a legacy "Response: Follows" Command answer (without the
	// "--END COMMAND--" terminator), or stray text in any other message.
	Output []string
}

// sensitiveKeys are field names whose values are redacted when a message is
// printed or logged.
var sensitiveKeys = [...]string{"Secret", "Key"}

// NewAction returns an action message named name with the given key/value
// pairs (kv must have an even length; a trailing odd key is ignored).
func NewAction(name string, kv ...string) *Message {
	m := &Message{Fields: make([]Field, 0, 1+len(kv)/2)}
	m.Add("Action", name)
	for i := 0; i+1 < len(kv); i += 2 {
		m.Add(kv[i], kv[i+1])
	}
	return m
}

// Add appends a field.
func (m *Message) Add(key, value string) {
	m.Fields = append(m.Fields, Field{Key: key, Value: value})
}

// Set replaces the first field named key (case-insensitive) and removes
// later ones, or appends it when absent.
func (m *Message) Set(key, value string) {
	out := m.Fields[:0]
	found := false
	for _, f := range m.Fields {
		if strings.EqualFold(f.Key, key) {
			if found {
				continue
			}
			found = true
			f.Value = value
		}
		out = append(out, f)
	}
	m.Fields = out
	if !found {
		m.Add(key, value)
	}
}

// Get returns the value of the first field named key (case-insensitive), or
// "" when there is none.
func (m *Message) Get(key string) string {
	v, _ := m.Lookup(key)
	return v
}

// Lookup is Get that also reports whether the field exists.
func (m *Message) Lookup(key string) (string, bool) {
	if m == nil {
		return "", false
	}
	for _, f := range m.Fields {
		if strings.EqualFold(f.Key, key) {
			return f.Value, true
		}
	}
	return "", false
}

// Has reports whether a field named key exists.
func (m *Message) Has(key string) bool {
	_, ok := m.Lookup(key)
	return ok
}

// All returns the values of every field named key, in wire order.
func (m *Message) All(key string) []string {
	if m == nil {
		return nil
	}
	var out []string
	for _, f := range m.Fields {
		if strings.EqualFold(f.Key, key) {
			out = append(out, f.Value)
		}
	}
	return out
}

// Event returns the value of the Event field ("" for responses and actions).
func (m *Message) Event() string { return m.Get("Event") }

// Response returns the value of the Response field ("" for events).
func (m *Message) Response() string { return m.Get("Response") }

// ActionID returns the value of the ActionID field.
func (m *Message) ActionID() string { return m.Get("ActionID") }

// Encode returns the wire form of m: "Key: Value\r\n" lines and a closing
// empty line. It refuses keys and values that contain CR or LF (which would
// let a value inject further fields or actions), empty keys, keys containing
// ':' or spaces, and messages with Output lines (actions have none).
func (m *Message) Encode() ([]byte, error) {
	if len(m.Output) > 0 {
		return nil, fmt.Errorf("encode AMI message: raw output lines cannot be sent")
	}
	var b bytes.Buffer
	for _, f := range m.Fields {
		if f.Key == "" || strings.ContainsAny(f.Key, ": \t\r\n") {
			return nil, fmt.Errorf("encode AMI message: invalid field name %q", f.Key)
		}
		if strings.ContainsAny(f.Value, "\r\n") {
			return nil, fmt.Errorf("encode AMI message: value of %s contains a line break", f.Key)
		}
		b.WriteString(f.Key)
		b.WriteString(": ")
		b.WriteString(f.Value)
		b.WriteString("\r\n")
	}
	b.WriteString("\r\n")
	return b.Bytes(), nil
}

func isSensitive(key string) bool {
	for _, k := range sensitiveKeys {
		if strings.EqualFold(k, key) {
			return true
		}
	}
	return false
}

// String returns a readable one-message dump with sensitive values (Secret,
// Key) redacted. It is meant for logs and test failures, not for the wire.
func (m *Message) String() string {
	if m == nil {
		return "<nil>"
	}
	var b strings.Builder
	for i, f := range m.Fields {
		if i > 0 {
			b.WriteString(", ")
		}
		v := f.Value
		if isSensitive(f.Key) {
			v = redacted
		}
		fmt.Fprintf(&b, "%s: %s", f.Key, v)
	}
	if len(m.Output) > 0 {
		fmt.Fprintf(&b, " (+%d output lines)", len(m.Output))
	}
	return b.String()
}

// LogValue implements slog.LogValuer with sensitive values redacted.
func (m *Message) LogValue() slog.Value {
	if m == nil {
		return slog.StringValue("<nil>")
	}
	attrs := make([]slog.Attr, 0, len(m.Fields)+1)
	for _, f := range m.Fields {
		v := f.Value
		if isSensitive(f.Key) {
			v = redacted
		}
		attrs = append(attrs, slog.String(f.Key, v))
	}
	if len(m.Output) > 0 {
		attrs = append(attrs, slog.Int("output_lines", len(m.Output)))
	}
	return slog.GroupValue(attrs...)
}
