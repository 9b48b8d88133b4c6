package delta

import (
	"fmt"
	"io"

	"github.com/klauspost/compress/zstd"
)

// DefaultDictMaxSize is the default Options.DictMaxSize: the largest base
// and target for KindDictZstd. Its encoder holds base and target twice
// (about 4× their size; ~45 MB resident at 8 MiB) and its decoder the base
// and a window of base + result. In the measurements (docs/delta.md) it won
// only on files under ~0.5 MB; above a few MiB block deltas were always
// smaller: a zstd block is at most 128 KiB, and every block of a dict-zstd
// frame costs 20–40 bytes even when nothing changed, where one copy op
// covers an unchanged run of any length.
const DefaultDictMaxSize = 4 << 20

// DefaultMaxDictBase is the default PatchOptions.MaxDictBase.
const DefaultMaxDictBase = 4 * DefaultDictMaxSize

// dictLevel: measured on dialplans of 0.2–20 MB, SpeedBetterCompression gave
// the smallest deltas; SpeedDefault lost badly above 8 MB (its hash table
// forgets most of a large dictionary) and SpeedBestCompression was 3–5×
// slower and no smaller.
const dictLevel = zstd.SpeedBetterCompression

// dictWindow returns the window that lets every byte of the target refer
// to every byte of the base before it.
func dictWindow(baseSize, targetSize int64) int {
	return windowFor(baseSize+targetSize, zstd.MaxWindowSize)
}

// encodeDictZstd compresses target with base as a raw dictionary (the
// zstd --patch-from idea) into one frame.
func encodeDictZstd(base, target []byte) ([]byte, error) {
	enc, err := zstd.NewWriter(nil,
		zstd.WithEncoderLevel(dictLevel),
		zstd.WithEncoderDictRaw(0, base),
		zstd.WithWindowSize(dictWindow(int64(len(base)), int64(len(target)))),
		zstd.WithEncoderConcurrency(1),
		zstd.WithEncoderCRC(false),
		zstd.WithLowerEncoderMem(true),
	)
	if err != nil {
		return nil, fmt.Errorf("delta: dict-zstd encoder: %w", err)
	}
	defer enc.Close()
	return enc.EncodeAll(target, nil), nil
}

// decodeDictZstd decodes a dict-zstd payload against base into out,
// refusing windows beyond what a result of resultSize needs.
func decodeDictZstd(payload io.Reader, base []byte, resultSize int64, out io.Writer) error {
	win := uint64(dictWindow(int64(len(base)), resultSize))
	dec, err := zstd.NewReader(payload,
		zstd.WithDecoderDictRaw(0, base),
		zstd.WithDecoderConcurrency(1),
		zstd.WithDecoderLowmem(true),
		zstd.WithDecoderMaxWindow(win),
		zstd.WithDecoderMaxMemory(win),
	)
	if err != nil {
		return fmt.Errorf("delta: dict-zstd decoder: %w", err)
	}
	defer dec.Close()
	_, err = io.Copy(out, dec)
	return err
}
