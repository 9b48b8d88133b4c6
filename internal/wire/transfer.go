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
}

// MaxSignature bounds the signature a Get may carry.
const MaxSignature = 64 << 20

// MaxGetMore bounds Get.More: with a path of 4 KiB, JSON-escaped, the
// frame stays under the 32 KiB of a Get.
const MaxGetMore = 127

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
		if len(m.Base) != 0 || m.Signature != 0 {
			return fmt.Errorf("more: only with neither base nor signature")
		}
		for i, h := range m.More {
			if len(h) != index.HashSize {
				return fmt.Errorf("more[%d]: %d bytes, want %d", i, len(h), index.HashSize)
			}
		}
	}
	return nil
}

// Encodings of a Data body.
const (
	EncodingZstd  = "zstd"  // a zstd frame of the whole content
	EncodingDelta = "delta" // a pbxsync/delta encoding against Get.Base
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
