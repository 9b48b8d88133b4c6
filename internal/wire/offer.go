package wire

import (
	"fmt"
	"io/fs"

	"pbxsync/internal/index"
)

// TypeOffer is the type of an Offer.
const TypeOffer Type = 13

// Bounds of one Offer: at most MaxOfferItems items whose paths take at
// most MaxOfferPathBytes in all (an encoder starts a new Offer before
// either is passed; a decoder refuses more than MaxOfferItems). With
// every byte of those paths JSON-escaped the frame stays within its
// MaxPayload.
const (
	MaxOfferItems     = 256
	MaxOfferPathBytes = 256 << 10
)

// Offer tells a target of a files push job about content the source has
// stored while it is still building a generation (the first one of the
// job): hints the target may fetch into its store ahead of the
// announcement. It never changes a tree; Get serves the offered hashes.
// Offers travel on a transfer stream the source opens (one frame after
// another, then the end of the stream), never on the control stream: an
// agent that predates them refuses the stream's first frame (an unknown
// type) and the connection goes on.
type Offer struct {
	Job   string      `json:"job"`
	Items []OfferItem `json:"items"`
}

// OfferItem is one file's content: where the source found it (Path, for
// the target's filters and the source's logs), its hash and size, and the
// mode and modification time the source's scan saw there (Mode and MTime,
// zero from a source that predates them): a target gives its prefetched
// copy those through the descriptor it wrote, so that the apply need not
// set them by path. They are hints: the announcement's item decides.
type OfferItem struct {
	Path  string `json:"path"`
	Hash  []byte `json:"hash"`
	Size  int64  `json:"size"`
	Mode  uint32 `json:"mode,omitempty"`  // index.ModeBits only
	MTime int64  `json:"mtime,omitempty"` // Unix nanoseconds
}

// Type implements Message.
func (*Offer) Type() Type { return TypeOffer }

// Validate implements Message.
func (m *Offer) Validate() error {
	if err := checkName("job", m.Job); err != nil {
		return err
	}
	if len(m.Items) == 0 || len(m.Items) > MaxOfferItems {
		return fmt.Errorf("items: %d, want 1-%d", len(m.Items), MaxOfferItems)
	}
	for i, it := range m.Items {
		if err := index.ValidatePath(it.Path); err != nil {
			return fmt.Errorf("items[%d]: %w", i, err)
		}
		if len(it.Hash) != index.HashSize {
			return fmt.Errorf("items[%d]: hash: %d bytes, want %d", i, len(it.Hash), index.HashSize)
		}
		if it.Size < 0 || it.Size > MaxBody {
			return fmt.Errorf("items[%d]: size %d out of range", i, it.Size)
		}
		if fs.FileMode(it.Mode)&^index.ModeBits != 0 {
			return fmt.Errorf("items[%d]: mode %#o has bits other than permissions, setuid, setgid and sticky", i, it.Mode)
		}
	}
	return nil
}
