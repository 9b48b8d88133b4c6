package index

import (
	"encoding/hex"
	"fmt"
	"io"

	"github.com/zeebo/blake3"
)

// HashSize is the length of a content hash in bytes.
const HashSize = 32

// Hash is the BLAKE3-256 hash of an item's content.
type Hash [HashSize]byte

// ZeroHash is the hash of nothing: directories and deleted items carry it.
var ZeroHash Hash

// IsZero reports whether h is the zero hash.
func (h Hash) IsZero() bool { return h == ZeroHash }

// String returns the lower-case hex form of h.
func (h Hash) String() string { return hex.EncodeToString(h[:]) }

// Short returns the first 12 hex digits of h, for logs.
func (h Hash) Short() string { return hex.EncodeToString(h[:6]) }

// ParseHash parses the hex form written by Hash.String.
func ParseHash(s string) (Hash, error) {
	var h Hash
	if len(s) != 2*HashSize {
		return h, fmt.Errorf("hash %q: want %d hex digits, have %d", s, 2*HashSize, len(s))
	}
	if _, err := hex.Decode(h[:], []byte(s)); err != nil {
		return h, fmt.Errorf("hash %q: %w", s, err)
	}
	return h, nil
}

// Sum returns the hash of b.
func Sum(b []byte) Hash {
	return Hash(blake3.Sum256(b))
}

// Hasher computes a Hash incrementally; it is an io.Writer.
type Hasher struct{ h *blake3.Hasher }

// NewHasher returns an empty Hasher.
func NewHasher() *Hasher { return &Hasher{h: blake3.New()} }

// Reset empties h, as NewHasher returns it, for reuse (a Hasher holds
// several KiB of state that a new one allocates and clears).
func (h *Hasher) Reset() { h.h.Reset() }

// Write adds p to the hash; it never fails.
func (h *Hasher) Write(p []byte) (int, error) { return h.h.Write(p) }

// Sum returns the hash of everything written so far.
func (h *Hasher) Sum() Hash {
	var out Hash
	h.h.Sum(out[:0])
	return out
}

// HashReader hashes everything r yields and returns the hash and the byte count.
func HashReader(r io.Reader) (Hash, int64, error) {
	h := NewHasher()
	n, err := io.Copy(h, r)
	if err != nil {
		return Hash{}, n, err
	}
	return h.Sum(), n, nil
}
