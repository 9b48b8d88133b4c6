package wire

import (
	"crypto/ed25519"
	"errors"
	"fmt"
)

// TypeRelay is the envelope of a message that crosses to another site
// through a relay (see Relay).
const TypeRelay Type = 12

// MaxRelayTo bounds the recipients of one Relay envelope.
const MaxRelayTo = 1024

// maxRelayPayload bounds the inner frame of a Relay: one frame, whose
// payload is at most MaxFrame bytes.
const maxRelayPayload = MaxFrame + HeaderSize

// Relay carries one signed frame between sites. The origin of a push job
// sends its announcement (Announce, or RowsAnnounce of a postgres job) once
// per remote site, to a relay among that site's targets, with the site's
// recipients in To; the relay handles it itself when it is in To and hands
// it on to the others. A target sends its answer (Result, RowsHave) back
// the same way, with the job's source in To.
//
// Payload is the inner message exactly as its signer encoded it (a frame:
// header and payload), Key the signer's Ed25519 public key and Sig its
// signature over RelaySigned(Job, Payload). A receiver trusts the inner
// message only when SHA-256(Key) is the ID its own config pins for the
// node that may send it (the job's source for an Announce, a target for a
// Result): a relay can hold an envelope back but not change it.
type Relay struct {
	Job     string   `json:"job"`
	To      []string `json:"to"`
	Key     []byte   `json:"key"`
	Sig     []byte   `json:"sig"`
	Payload []byte   `json:"payload"`
}

// Type implements Message.
func (*Relay) Type() Type { return TypeRelay }

// Validate implements Message.
func (m *Relay) Validate() error {
	if err := checkName("job", m.Job); err != nil {
		return err
	}
	if len(m.To) == 0 || len(m.To) > MaxRelayTo {
		return fmt.Errorf("to: %d recipients, want 1-%d", len(m.To), MaxRelayTo)
	}
	for _, n := range m.To {
		if err := checkName("to", n); err != nil {
			return err
		}
	}
	if len(m.Key) != ed25519.PublicKeySize {
		return fmt.Errorf("key: %d bytes, want %d", len(m.Key), ed25519.PublicKeySize)
	}
	if len(m.Sig) != ed25519.SignatureSize {
		return fmt.Errorf("sig: %d bytes, want %d", len(m.Sig), ed25519.SignatureSize)
	}
	if len(m.Payload) < HeaderSize || len(m.Payload) > maxRelayPayload {
		return fmt.Errorf("payload: %d bytes, want %d-%d", len(m.Payload), HeaderSize, maxRelayPayload)
	}
	return nil
}

// RelaySigned returns the bytes a Relay's signature covers: a context
// string, the job and the inner frame, so that a signature made for one
// job or purpose is worth nothing for another.
func RelaySigned(job string, payload []byte) []byte {
	const ctx = "pbxsync relay v1\x00"
	b := make([]byte, 0, len(ctx)+len(job)+1+len(payload))
	b = append(b, ctx...)
	b = append(b, job...)
	b = append(b, 0)
	return append(b, payload...)
}

// SealRelay encodes m with c and signs it with key: the envelope for to.
func SealRelay(c *Codec, key ed25519.PrivateKey, job string, to []string, m Message) (*Relay, error) {
	payload, err := c.Encode(m)
	if err != nil {
		return nil, err
	}
	return &Relay{Job: job, To: to, Key: key.Public().(ed25519.PublicKey), Sig: ed25519.Sign(key, RelaySigned(job, payload)), Payload: payload}, nil
}

// ErrRelaySignature is returned by OpenRelay for an envelope whose
// signature does not verify with its key.
var ErrRelaySignature = errors.New("relay: signature does not verify")

// OpenRelay verifies r's signature with its key and decodes its inner
// message, which must be an announcement (Announce, RowsAnnounce) or a
// target's answer (Result, RowsHave) of r's job. Who the key belongs to is
// the caller's question (see Relay).
func OpenRelay(c *Codec, r *Relay) (Message, error) {
	if !ed25519.Verify(ed25519.PublicKey(r.Key), RelaySigned(r.Job, r.Payload), r.Sig) {
		return nil, ErrRelaySignature
	}
	m, err := c.Decode(r.Payload)
	if err != nil {
		return nil, fmt.Errorf("relay: inner message: %w", err)
	}
	var job string
	switch m := m.(type) {
	case *Announce:
		job = m.Job
	case *Result:
		job = m.Job
	case *RowsAnnounce:
		job = m.Job
	case *RowsHave:
		job = m.Job
	default:
		return nil, fmt.Errorf("relay: inner %s: only announcements and their answers are relayed", m.Type())
	}
	if job != r.Job {
		return nil, fmt.Errorf("relay: inner message is of job %q, the envelope names %q", job, r.Job)
	}
	return m, nil
}
