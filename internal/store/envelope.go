package store

import (
	"bytes"
	"fmt"

	"pbxsync/internal/index"
)

// Every metadata file is an envelope: one header line
//
//	pbxsync-<kind> 1 <BLAKE3-256 of the body, 64 hex digits>\n
//
// followed by the body (JSON). The checksum turns a torn or bit-flipped
// file into ErrCorrupt instead of a silently wrong value; `tail -n +2 FILE |
// jq .` shows the body.

const envVersion = "1"

// encodeEnvelope frames body as a file of the given kind.
func encodeEnvelope(kind string, body []byte) []byte {
	sum := index.Sum(body)
	out := make([]byte, 0, len(body)+len(kind)+80)
	out = append(out, "pbxsync-"...)
	out = append(out, kind...)
	out = append(out, ' ')
	out = append(out, envVersion...)
	out = append(out, ' ')
	out = append(out, sum.String()...)
	out = append(out, '\n')
	return append(out, body...)
}

// decodeEnvelope checks the header and the checksum and returns the body.
// Every failure wraps ErrCorrupt.
func decodeEnvelope(kind string, b []byte) ([]byte, error) {
	nl := bytes.IndexByte(b, '\n')
	if nl < 0 || nl > 200 {
		return nil, fmt.Errorf("%w: no %s header line (torn or foreign file)", ErrCorrupt, kind)
	}
	fields := bytes.Split(b[:nl], []byte{' '})
	if len(fields) != 3 || string(fields[0]) != "pbxsync-"+kind {
		return nil, fmt.Errorf("%w: not a pbxsync %s file", ErrCorrupt, kind)
	}
	if string(fields[1]) != envVersion {
		return nil, fmt.Errorf("%w: %s format version %q, want %s", ErrCorrupt, kind, fields[1], envVersion)
	}
	want, err := index.ParseHash(string(fields[2]))
	if err != nil {
		return nil, fmt.Errorf("%w: %s checksum: %v", ErrCorrupt, kind, err)
	}
	body := b[nl+1:]
	if got := index.Sum(body); got != want {
		return nil, fmt.Errorf("%w: %s checksum mismatch (torn write or damaged file): header %s, content %s", ErrCorrupt, kind, want.Short(), got.Short())
	}
	return body, nil
}
