package wire

import (
	"encoding/json"
	"fmt"
	"io"

	"pbxsync/internal/index"
)

// decodeAnnounce decodes an announcement element by element, so that its
// item count (and the total of removed paths, inline entries and version
// counters) is checked while it is read: a frame that claims more than
// MaxItems of any of them is refused before they are all in memory.
//
// start is called before each element of a list is decoded (it resets the
// per-element byte budget, maxElem).
func decodeAnnounce(dec *json.Decoder, m *Announce, limit int, start func()) error {
	if err := expectDelim(dec, '{'); err != nil {
		return err
	}
	counters := 0
	var vs index.Vectors // the items share their version vectors
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return err
		}
		key, _ := tok.(string)
		start()
		switch key {
		case "job":
			err = dec.Decode(&m.Job)
		case "version":
			err = dec.Decode(&m.Version)
		case "origin":
			err = dec.Decode(&m.Origin)
		case "reason":
			err = dec.Decode(&m.Reason)
		case "time":
			err = dec.Decode(&m.Time)
		case "base":
			err = dec.Decode(&m.Base)
		case "part":
			err = dec.Decode(&m.Part)
		case "parts":
			err = dec.Decode(&m.Parts)
		case "digest":
			err = dec.Decode(&m.Digest)
		case "items":
			m.Items = []Item{}
			err = decodeArray(dec, "items", limit, func() error {
				start()
				var it Item
				if err := dec.Decode(&it); err != nil {
					return err
				}
				if counters += len(it.Version); counters > limit {
					return fmt.Errorf("more than %d version counters", limit)
				}
				it.Version = vs.Intern(it.Version)
				m.Items = append(m.Items, it)
				return nil
			})
		case "removed":
			m.Removed, err = decodePaths(dec, "removed", limit, start)
		case "unreadable":
			m.Unreadable, err = decodePaths(dec, "unreadable", limit, start)
		case "inline":
			m.Inline = []Inline{}
			err = decodeArray(dec, "inline", limit, func() error {
				start()
				var in Inline
				if err := dec.Decode(&in); err != nil {
					return err
				}
				m.Inline = append(m.Inline, in)
				return nil
			})
		default:
			return fmt.Errorf("json: unknown field %q", truncate(key, 40))
		}
		if err == errNull { // JSON null, as encoding/json decodes it
			switch key {
			case "items":
				m.Items = nil
			case "removed":
				m.Removed = nil
			case "unreadable":
				m.Unreadable = nil
			case "inline":
				m.Inline = nil
			}
			err = nil
		}
		if err != nil {
			return err
		}
	}
	return expectDelim(dec, '}')
}

// decodePaths reads a JSON array of paths (removed, unreadable).
func decodePaths(dec *json.Decoder, field string, limit int, start func()) ([]string, error) {
	paths := []string{}
	err := decodeArray(dec, field, limit, func() error {
		start()
		var p string
		if err := dec.Decode(&p); err != nil {
			return err
		}
		paths = append(paths, p)
		return nil
	})
	return paths, err
}

// errNull is returned by decodeArray for a JSON null.
var errNull = fmt.Errorf("null")

// decodeArray reads a JSON array (or null) calling each for every element;
// more than limit elements is an error.
func decodeArray(dec *json.Decoder, field string, limit int, each func() error) error {
	tok, err := dec.Token()
	if err != nil {
		return err
	}
	if tok == nil {
		return errNull
	}
	if d, ok := tok.(json.Delim); !ok || d != '[' {
		return fmt.Errorf("%s: want an array", field)
	}
	for n := 0; dec.More(); n++ {
		if n >= limit {
			return fmt.Errorf("%s: more than %d entries", field, limit)
		}
		if err := each(); err != nil {
			return fmt.Errorf("%s %d: %w", field, n, err)
		}
	}
	return expectDelim(dec, ']')
}

func expectDelim(dec *json.Decoder, want json.Delim) error {
	tok, err := dec.Token()
	if err != nil {
		return err
	}
	if d, ok := tok.(json.Delim); !ok || d != want {
		return fmt.Errorf("want %q, got %v", want, tok)
	}
	return nil
}

// maxElem bounds the bytes one field or list element of an announcement may
// take: an item (a 4 KiB path, a hash, 1024 version counters, all
// JSON-escaped) or an inline entry (1 MiB of data in base64) fits.
const maxElem = 2 << 20

// elemReader fails once more than max bytes were read since the last
// start: one element of an announcement cannot make the JSON decoder
// buffer the whole payload. max 0 is no limit.
type elemReader struct {
	r   io.Reader
	n   int
	max int
}

func (e *elemReader) start() { e.n = 0 }

func (e *elemReader) Read(p []byte) (int, error) {
	k, err := e.r.Read(p)
	e.n += k
	if e.max > 0 && e.n > e.max {
		return 0, fmt.Errorf("wire: %w: an announcement element of more than %d bytes", ErrTooLarge, e.max)
	}
	return k, err
}
