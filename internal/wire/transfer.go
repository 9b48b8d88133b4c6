package wire

import (
	"fmt"

	"pbxsync/internal/index"
)

// Get asks the owner of a job for content by hash. Base, when set, names
// content the requester already has, so the owner may answer with a delta.
type Get struct {
	Job  string `json:"job"`
	Path string `json:"path"` // for the owner's logs and authorization
	Hash []byte `json:"hash"`
	Base []byte `json:"base,omitempty"`
	// Signature, when set, is the length of a pbxsync/delta signature of
	// the requester's current copy that follows this frame on the stream:
	// for content whose base the owner cannot know (rsync's way).
	Signature int64 `json:"signature,omitempty"`
	// More, when set, names more content (whole, as stored: no base, no
	// signature) the owner sends on the same stream after Hash's, in
	// order: one Data frame and its body each. Many small files cost one
	// stream instead of one each. An owner that does not know the field
	// refuses the frame; the requester then asks for each on its own.
	More [][]byte `json:"more,omitempty"`
	// MoreBase, when set, names a base for each of More, in order (an
	// empty one: none): the owner answers that content with a delta
	// against its base when it holds the base and the delta is smaller,
	// as it does for Base. A bulk edit of many small files then costs one
	// stream per batch of them instead of one each. With it, More holds
	// at most MaxGetMoreBased hashes, and Base may be set too. An owner
	// that does not know the field refuses the frame; the requester then
	// asks for each on its own.
	MoreBase [][]byte `json:"more_base,omitempty"`
}

// MaxSignature bounds the signature a Get may carry.
const MaxSignature = 64 << 20

// MaxGetMore bounds Get.More: with a path of 4 KiB, JSON-escaped, the
// frame stays under the 32 KiB of a Get.
const MaxGetMore = 127

// MaxGetMoreBased bounds Get.More when Get.MoreBase is set: a base for
// each of them is as long again.
const MaxGetMoreBased = 63

// Type implements Message.
func (*Get) Type() Type { return TypeGet }

// Validate implements Message.
func (m *Get) Validate() error {
	if err := checkName("job", m.Job); err != nil {
		return err
	}
	if err := index.ValidatePath(m.Path); err != nil {
		return err
	}
	if len(m.Hash) != index.HashSize {
		return fmt.Errorf("hash: %d bytes, want %d", len(m.Hash), index.HashSize)
	}
	if len(m.Base) != 0 && len(m.Base) != index.HashSize {
		return fmt.Errorf("base: %d bytes, want %d", len(m.Base), index.HashSize)
	}
	if m.Signature < 0 || m.Signature > MaxSignature {
		return fmt.Errorf("signature length %d out of range", m.Signature)
	}
	if len(m.More) > 0 {
		if len(m.More) > MaxGetMore {
			return fmt.Errorf("more: %d hashes, at most %d", len(m.More), MaxGetMore)
		}
		if m.Signature != 0 {
			return fmt.Errorf("more: not with a signature")
		}
		if len(m.Base) != 0 && len(m.MoreBase) == 0 {
			return fmt.Errorf("more: a base only with more_base")
		}
		for i, h := range m.More {
			if len(h) != index.HashSize {
				return fmt.Errorf("more[%d]: %d bytes, want %d", i, len(h), index.HashSize)
			}
		}
	}
	if len(m.MoreBase) > 0 {
		if len(m.MoreBase) != len(m.More) {
			return fmt.Errorf("more_base: %d bases for %d hashes", len(m.MoreBase), len(m.More))
		}
		if len(m.More) > MaxGetMoreBased {
			return fmt.Errorf("more: %d hashes with bases, at most %d", len(m.More), MaxGetMoreBased)
		}
		for i, b := range m.MoreBase {
			if len(b) != 0 && len(b) != index.HashSize {
				return fmt.Errorf("more_base[%d]: %d bytes, want %d or none", i, len(b), index.HashSize)
			}
		}
	}
	return nil
}

// Encodings of a Data body.
const (
	EncodingZstd  = "zstd"  // a zstd frame of the whole content
	EncodingDelta = "delta" // a pbxsync/delta encoding against Get.Base (or the content's Get.MoreBase)
)

// MaxBody bounds the bytes that may follow a Data frame (1 TiB).
const MaxBody = 1 << 40

// Data answers a Get: Size raw bytes of the given encoding follow the frame.
type Data struct {
	Encoding string `json:"encoding"`
	Size     int64  `json:"size"`   // bytes that follow on the stream
	Length   int64  `json:"length"` // decoded content length
	Hash     []byte `json:"hash"`   // hash of the decoded content
}

// Type implements Message.
func (*Data) Type() Type { return TypeData }

// Validate implements Message.
func (m *Data) Validate() error {
	switch m.Encoding {
	case EncodingZstd, EncodingDelta:
	default:
		return fmt.Errorf("encoding %q: want zstd or delta", truncate(m.Encoding, 40))
	}
	if m.Size < 0 || m.Size > MaxBody {
		return fmt.Errorf("size %d out of range", m.Size)
	}
	if m.Length < 0 || m.Length > MaxBody {
		return fmt.Errorf("length %d out of range", m.Length)
	}
	if len(m.Hash) != index.HashSize {
		return fmt.Errorf("hash: %d bytes, want %d", len(m.Hash), index.HashSize)
	}
	return nil
}

// HashOf converts a validated 32-byte slice to an index.Hash.
func HashOf(b []byte) index.Hash {
	var h index.Hash
	copy(h[:], b)
	return h
}
