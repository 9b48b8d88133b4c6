package wire

import (
	"encoding/json"
	"fmt"
)

// decodeAnnounce decodes an announcement element by element, so that its
// item count (and the total of removed paths, inline entries and version
// counters) is checked while it is read: a frame that claims more than
// MaxItems of any of them is refused before they are all in memory.
func decodeAnnounce(dec *json.Decoder, m *Announce) error {
	if err := expectDelim(dec, '{'); err != nil {
		return err
	}
	counters := 0
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return err
		}
		key, _ := tok.(string)
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
		case "digest":
			err = dec.Decode(&m.Digest)
		case "items":
			m.Items = []Item{}
			err = decodeArray(dec, "items", MaxItems, func() error {
				var it Item
				if err := dec.Decode(&it); err != nil {
					return err
				}
				if counters += len(it.Version); counters > MaxItems {
					return fmt.Errorf("more than %d version counters", MaxItems)
				}
				m.Items = append(m.Items, it)
				return nil
			})
		case "removed":
			m.Removed = []string{}
			err = decodeArray(dec, "removed", MaxItems, func() error {
				var p string
				if err := dec.Decode(&p); err != nil {
					return err
				}
				m.Removed = append(m.Removed, p)
				return nil
			})
		case "inline":
			m.Inline = []Inline{}
			err = decodeArray(dec, "inline", MaxItems, func() error {
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
