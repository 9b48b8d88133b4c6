package main

import (
	"bytes"
	"context"
	"math"

	"pbxsync/delta"
	"pbxsync/internal/astgen"
)

type sweepCase struct {
	name         string
	base, target []byte
}

func (b *bench) sweepCases() []sweepCase {
	g := astgen.New(99)
	scale := 1
	if b.quick {
		scale = 10
	}
	d1, d2, d3 := g.Dialplan(1000), g.Dialplan(10000/scale), g.Dialplan(100000/scale)
	wav := g.WAV(5 << 20 / scale)
	return []sweepCase{
		{"200 KB dialplan, 1 line", d1, g.ChangeLine(d1)},
		{"2 MB dialplan, 1 line", d2, g.ChangeLine(d2)},
		{"2 MB dialplan, +100 lines", d2, g.InsertLines(d2, 100)},
		{"20 MB dialplan, 1 line", d3, g.ChangeLine(d3)},
		{"20 MB dialplan, 100 scattered", d3, g.ScatterEdits(d3, 100)},
		{"5 MB wav, 5 pokes", wav, g.PokeBytes(wav, 5, 44)},
	}
}

// sweeps measures the block sizes: of wire signatures (signature + delta
// bytes for several multiples of √n, and rsync's own rule), and of the
// sender-side block match (delta bytes and CPU time).
func (b *bench) sweeps() error {
	cases := b.sweepCases()
	factors := []float64{0.5, 1, 2, 4}
	b.printf("\n## Block size of wire signatures\n\nSignature + Diff bytes (no allowance) for block = f·√n (multiple of 16, within [512 B, 128 KiB]), and for rsync's rule (700 B below 490 KB, else √n, ≤ 128 KiB) with our hashes. WriteSignature uses f=2 when a 64 KiB sample of the base compresses below half, else f=1.\n\n| case |")
	for _, f := range factors {
		b.printf(" f=%g |", f)
	}
	b.printf(" rsync rule |\n|---|")
	for range len(factors) + 1 {
		b.printf("---:|")
	}
	b.printf("\n")
	for _, c := range cases {
		b.printf("| %s |", c.name)
		n := float64(len(c.base))
		for _, f := range factors {
			bs := min(max(int(f*math.Sqrt(n))&^15, 512), 128<<10)
			got, err := sigPath(c.base, c.target, bs)
			if err != nil {
				return err
			}
			b.printf(" %d |", got)
		}
		bs := 700
		if n >= 490000 {
			bs = min(int(math.Sqrt(n))&^7, 128<<10)
		}
		got, err := sigPath(c.base, c.target, bs)
		if err != nil {
			return err
		}
		b.printf(" %d |\n", got)
	}

	sizes := []int{32, 64, 128, 256, 1024}
	b.printf("\n## Block size of the sender-side block match\n\nDelta bytes (smaller of blocks / blocks-zstd; dict-zstd off) and CPU ms of Encode.\n\n| case |")
	for _, s := range sizes {
		b.printf(" %d B |", s)
	}
	b.printf("\n|---|")
	for range sizes {
		b.printf("---:|")
	}
	b.printf("\n")
	for _, c := range cases {
		b.printf("| %s |", c.name)
		for _, s := range sizes {
			var d bytes.Buffer
			bf := delta.BytesFile(c.base)
			t, err := measure(func() error {
				_, err := delta.Encode(context.Background(), &d, &bf, delta.BytesFile(c.target), &delta.Options{BlockSize: s, DictMaxSize: -1, TryAllMaxSize: 1})
				return err
			})
			if err != nil {
				return err
			}
			b.printf(" %d (%.0f ms) |", d.Len(), t.cpu.Seconds()*1000)
		}
		b.printf("\n")
	}

	b.printf("\n## Dict-zstd vs block match by size\n\nDelta bytes (and CPU ms) of each base-aware encoding alone.\n\n| case | dict-zstd | blocks-zstd | blocks |\n|---|---:|---:|---:|\n")
	for _, c := range cases {
		b.printf("| %s |", c.name)
		for _, k := range []delta.Kind{delta.KindDictZstd, delta.KindBlocksZstd, delta.KindBlocks} {
			var d bytes.Buffer
			bf := delta.BytesFile(c.base)
			t, err := measure(func() error {
				_, err := delta.EncodeKind(context.Background(), &d, k, &bf, delta.BytesFile(c.target), nil)
				return err
			})
			if err != nil {
				return err
			}
			b.printf(" %d (%.0f ms) |", d.Len(), t.cpu.Seconds()*1000)
		}
		b.printf("\n")
	}
	return nil
}
