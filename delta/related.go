package delta

import (
	"bytes"
	"io"
)

// Relatedness probing: LikelyRelated takes relatedProbes windows of
// relatedWindow bytes spread evenly over the target and looks for each in
// the base.
const (
	relatedProbes = 16
	relatedWindow = 32
)

// LikelyRelated reports whether target shares content with base, by looking
// for a few short windows of the target in the base. It reads the target's
// windows and scans the base once per window, so it costs a few passes over
// the base (for bases up to maxScan bytes; larger bases count as related,
// since the block match bounds its own cost there). A false answer means a
// delta would almost surely be no smaller than compressing the target
// alone, and the encoders can be skipped: unrelated content (a sound file
// recorded anew, random data) costs the analyzer a full pass of every
// candidate for nothing.
func LikelyRelated(base, target File, maxScan int64) (bool, error) {
	if base.Size == 0 || target.Size < relatedWindow*2 || base.Size > maxScan {
		return true, nil
	}
	b := make([]byte, base.Size)
	if _, err := base.R.ReadAt(b, 0); err != nil && err != io.EOF {
		return false, err
	}
	win := make([]byte, relatedWindow)
	step := (target.Size - relatedWindow) / (relatedProbes - 1)
	for i := int64(0); i < relatedProbes; i++ {
		off := i * step
		if _, err := target.R.ReadAt(win, off); err != nil && err != io.EOF {
			return false, err
		}
		if bytes.Contains(b, win) {
			return true, nil
		}
	}
	return false, nil
}
