package wire

import (
	"bytes"
	"encoding/base64"
	"strconv"
)

// A Data frame comes before every file a fetch gets: 100,000 of them in
// the first sync of a 100,000-file job, where encoding/json's reflection
// and a decoder made for each frame cost the source ~0.5 s and the target
// ~0.6 s of CPU. The payload stays the JSON that json.Marshal writes:
// appendData writes the same bytes without reflection, and parseData reads
// exactly that form back. Any other form of the same message (another
// field order, spaces, escapes, a null hash: JSON a peer may send) is
// decoded by encoding/json as before, and refused where it refused it.

// Data's payload in json.Marshal's form, around its four values.
const (
	dataOpen   = `{"encoding":"`
	dataSize   = `","size":`
	dataLength = `,"length":`
	dataHash   = `,"hash":"`
	dataClose  = `"}`
)

// appendData appends m's payload, byte for byte what json.Marshal writes,
// to dst. It reports false, appending nothing, where json.Marshal would
// escape the encoding or write the hash as null: the caller marshals m
// instead.
func appendData(dst []byte, m *Data) ([]byte, bool) {
	if m.Hash == nil || !plainJSON(m.Encoding) {
		return dst, false
	}
	dst = append(dst, dataOpen...)
	dst = append(dst, m.Encoding...)
	dst = append(dst, dataSize...)
	dst = strconv.AppendInt(dst, m.Size, 10)
	dst = append(dst, dataLength...)
	dst = strconv.AppendInt(dst, m.Length, 10)
	dst = append(dst, dataHash...)
	dst = base64.StdEncoding.AppendEncode(dst, m.Hash)
	return append(dst, dataClose...), true
}

// parseData reads b into m if b is a Data payload in appendData's form
// with non-negative numbers, and reports whether it was; m is unchanged
// when it was not.
func parseData(b []byte, m *Data) bool {
	var enc []byte
	var size, length int64
	var ok bool
	if b, ok = bytes.CutPrefix(b, []byte(dataOpen)); !ok {
		return false
	}
	if enc, b, ok = bytes.Cut(b, []byte(dataSize)); !ok || !plainJSON(string(enc)) {
		return false
	}
	if size, b, ok = cutNumber(b); !ok {
		return false
	}
	if b, ok = bytes.CutPrefix(b, []byte(dataLength)); !ok {
		return false
	}
	if length, b, ok = cutNumber(b); !ok {
		return false
	}
	if b, ok = bytes.CutPrefix(b, []byte(dataHash)); !ok {
		return false
	}
	if b, ok = bytes.CutSuffix(b, []byte(dataClose)); !ok {
		return false
	}
	for _, c := range b {
		if !('A' <= c && c <= 'Z' || 'a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '+' || c == '/' || c == '=') {
			return false
		}
	}
	hash := make([]byte, base64.StdEncoding.DecodedLen(len(b)))
	n, err := base64.StdEncoding.Decode(hash, b)
	if err != nil {
		return false
	}
	*m = Data{Encoding: string(enc), Size: size, Length: length, Hash: hash[:n]}
	return true
}

// cutNumber reads the non-negative JSON integer at the start of b (no
// sign, no leading zero, no fraction or exponent) that fits an int64.
func cutNumber(b []byte) (int64, []byte, bool) {
	i := 0
	for i < len(b) && '0' <= b[i] && b[i] <= '9' {
		i++
	}
	if i == 0 || i > 1 && b[0] == '0' || i < len(b) && (b[i] == '.' || b[i] == 'e' || b[i] == 'E') {
		return 0, b, false
	}
	v, err := strconv.ParseInt(string(b[:i]), 10, 64)
	if err != nil {
		return 0, b, false
	}
	return v, b[i:], true
}

// plainJSON reports whether json.Marshal writes s as it is between its
// quotes: printable ASCII without the characters it escapes.
func plainJSON(s string) bool {
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c < 0x20 || c > 0x7e, c == '"', c == '\\', c == '<', c == '>', c == '&':
			return false
		}
	}
	return true
}
