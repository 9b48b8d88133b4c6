package identity

import (
	"crypto/ed25519"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base32"
	"errors"
	"fmt"
	"strings"
)

// ID is a node ID: the SHA-256 of the node's Ed25519 public key.
type ID [sha256.Size]byte

const (
	alphabet   = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"
	groups     = 4
	groupChars = 13 // 52 base32 characters / 4 groups
)

var b32 = base32.StdEncoding.WithPadding(base32.NoPadding)

// IDFromPublicKey returns the ID of an Ed25519 public key.
func IDFromPublicKey(pub ed25519.PublicKey) ID { return ID(sha256.Sum256(pub)) }

// IDFromCertificate returns the ID of the Ed25519 key in cert, or an error
// when cert holds another kind of key.
func IDFromCertificate(cert *x509.Certificate) (ID, error) {
	pub, ok := cert.PublicKey.(ed25519.PublicKey)
	if !ok {
		return ID{}, fmt.Errorf("certificate key is %T, want Ed25519", cert.PublicKey)
	}
	return IDFromPublicKey(pub), nil
}

// String returns the grouped base32 form with check characters.
func (id ID) String() string {
	raw := b32.EncodeToString(id[:])
	var sb strings.Builder
	for g := 0; g < groups; g++ {
		if g > 0 {
			sb.WriteByte('-')
		}
		part := raw[g*groupChars : (g+1)*groupChars]
		sb.WriteString(part)
		sb.WriteByte(luhn32(part))
	}
	return sb.String()
}

// Short returns the first group of the ID, for logs and tables.
func (id ID) Short() string { return id.String()[:groupChars+1] }

// IsZero reports whether id is the zero ID.
func (id ID) IsZero() bool { return id == ID{} }

// ErrBadID is wrapped by every error ParseID returns.
var ErrBadID = errors.New("malformed node ID")

// ParseID parses the form printed by String. Case, spaces and dashes are
// forgiven; a wrong length, a character outside base32 or a wrong check
// character is an error.
func ParseID(s string) (ID, error) {
	var id ID
	clean := strings.ToUpper(strings.NewReplacer("-", "", " ", "").Replace(s))
	if len(clean) != groups*(groupChars+1) {
		return id, fmt.Errorf("%w %q: want %d characters (without dashes), have %d", ErrBadID, s, groups*(groupChars+1), len(clean))
	}
	var raw strings.Builder
	for g := 0; g < groups; g++ {
		chunk := clean[g*(groupChars+1) : (g+1)*(groupChars+1)]
		part, check := chunk[:groupChars], chunk[groupChars]
		for _, c := range chunk {
			if !strings.ContainsRune(alphabet, c) {
				return id, fmt.Errorf("%w %q: %q is not a base32 character", ErrBadID, s, c)
			}
		}
		if luhn32(part) != check {
			return id, fmt.Errorf("%w %q: check character of group %d is wrong (typo?)", ErrBadID, s, g+1)
		}
		raw.WriteString(part)
	}
	b, err := b32.DecodeString(raw.String())
	if err != nil || len(b) != len(id) {
		return id, fmt.Errorf("%w %q: %v", ErrBadID, s, err)
	}
	copy(id[:], b)
	return id, nil
}

// MarshalText implements encoding.TextMarshaler.
func (id ID) MarshalText() ([]byte, error) { return []byte(id.String()), nil }

// UnmarshalText implements encoding.TextUnmarshaler.
func (id *ID) UnmarshalText(b []byte) error {
	v, err := ParseID(string(b))
	if err != nil {
		return err
	}
	*id = v
	return nil
}

// luhn32 computes the Luhn mod N check character of s over the base32 alphabet.
func luhn32(s string) byte {
	const n = len(alphabet)
	factor, sum := 1, 0
	for i := len(s) - 1; i >= 0; i-- {
		code := strings.IndexByte(alphabet, s[i])
		addend := factor * code
		if factor == 2 {
			factor = 1
		} else {
			factor = 2
		}
		addend = addend/n + addend%n
		sum += addend
	}
	return alphabet[(n-sum%n)%n]
}
