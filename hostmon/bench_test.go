package hostmon

import (
	"context"
	"fmt"
	"testing"
)

// BenchmarkScan scans 10,000 small files in 100 directories: "cold" hashes
// every file (no previous state; the page cache is warm), "trusted" passes
// the previous scan so only stat calls are made.
func BenchmarkScan(b *testing.B) {
	root := b.TempDir()
	for d := range 100 {
		for f := range 100 {
			writeFile(b, root, fmt.Sprintf("d%02d/f%03d.conf", d, f), fmt.Sprintf("[section-%d-%d]\nkey = value\n", d, f), 0o644)
		}
	}
	waitUntrusted() // let the files age past the racy window
	ctx := context.Background()

	b.Run("cold", func(b *testing.B) {
		for b.Loop() {
			if _, err := Scan(ctx, root, nil, nil, nil); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("trusted", func(b *testing.B) {
		prev, err := Scan(ctx, root, nil, nil, nil)
		if err != nil {
			b.Fatal(err)
		}
		for p, st := range prev {
			if st.CTime == 0 {
				b.Fatalf("%s is not trusted: the benchmark would hash it", p)
			}
		}
		for b.Loop() {
			if _, err := Scan(ctx, root, nil, prev, nil); err != nil {
				b.Fatal(err)
			}
		}
	})
	// a job's full rescan (a restart's): only what differs, from a map
	// or from the job's compact States
	prev, err := Scan(ctx, root, nil, nil, nil)
	if err != nil {
		b.Fatal(err)
	}
	for name, p := range map[string]Prev{"rescan-map": StateMap(prev), "rescan-states": NewStates(prev)} {
		b.Run(name, func(b *testing.B) {
			for b.Loop() {
				if _, err := ScanDelta(ctx, root, nil, []string{""}, p, nil); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkRescanOne rescans one file of a 10,000-file tree: "copy" is
// ScanTreePaths (a new complete map), "delta" ScanTreeDelta (only what
// changed; the cost does not grow with the tree).
func BenchmarkRescanOne(b *testing.B) {
	root := b.TempDir()
	for d := range 100 {
		for f := range 100 {
			writeFile(b, root, fmt.Sprintf("d%02d/f%03d.conf", d, f), "x\n", 0o644)
		}
	}
	ctx := context.Background()
	prev, err := Scan(ctx, root, nil, nil, nil)
	if err != nil {
		b.Fatal(err)
	}
	paths := []string{"d42/f042.conf"}
	b.Run("copy", func(b *testing.B) {
		for b.Loop() {
			if _, err := ScanTreePaths(ctx, root, nil, paths, prev, nil); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("delta", func(b *testing.B) {
		for b.Loop() {
			if _, err := ScanTreeDelta(ctx, root, nil, paths, prev, nil); err != nil {
				b.Fatal(err)
			}
		}
	})
	states := NewStates(prev)
	b.Run("delta-states", func(b *testing.B) {
		for b.Loop() {
			if _, err := ScanDelta(ctx, root, nil, paths, states, nil); err != nil {
				b.Fatal(err)
			}
		}
	})
}
