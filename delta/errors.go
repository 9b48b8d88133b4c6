package delta

import (
	"errors"
	"fmt"
)

// Errors returned by the decoders. They are wrapped with context; test with
// errors.Is.
var (
	// ErrCorrupt means the delta or signature is damaged or forged: a bad
	// magic or header checksum, a length or offset out of bounds, a
	// truncated stream, or a result whose hash or size differs from the one
	// the header promises (which is also what a base with the right size
	// but the wrong content produces when no base hash was given).
	ErrCorrupt = errors.New("delta: corrupt")

	// ErrBaseMismatch means the delta was made against another base than
	// the one given: the size or hash differs, or no base was given for an
	// encoding that needs one.
	ErrBaseMismatch = errors.New("delta: base mismatch")

	// ErrTooLarge means a size in the input exceeds a limit the caller set
	// (PatchOptions.MaxSize, PatchOptions.MaxDictBase, SignatureLimits).
	ErrTooLarge = errors.New("delta: too large")

	// ErrUnsupported means the input is of a format version, kind or flag
	// this code does not know.
	ErrUnsupported = errors.New("delta: unsupported")
)

func corruptf(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrCorrupt}, args...)...)
}
