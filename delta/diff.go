package delta

import (
	"context"
	"io"
)

// Diff writes to w a delta of target against the base that sig describes:
// the sender side when it does not hold the receiver's base. It makes one
// block-match pass (rolling weak checksum, strong confirmation) that yields
// KindBlocks and KindBlocksZstd, adds whole-file KindZstd when the target
// is small or the base matched little, and writes the smallest, whose
// header names sig.BaseHash as the base. Memory: the signature plus a few
// MiB, for any target size.
func Diff(ctx context.Context, w io.Writer, sig *Signature, target File, opts *Options) (Result, error) {
	e := newEncoder(ctx, target, opts)
	defer e.close()
	e.baseSize = sig.BaseSize
	e.baseHash, e.haveBase = sig.BaseHash, true
	if err := e.tryBlocks(sig, 0); err != nil {
		return e.res, err
	}
	if target.Size <= e.o.TryAllMaxSize || e.bestTotal > target.Size/8 {
		if err := e.tryZstd(); err != nil {
			return e.res, err
		}
	} else {
		e.skip(KindZstd, "block delta saved over 7/8")
	}
	return e.finish(w)
}
