package main

import (
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"syscall"

	"pbxsync/internal/astgen"
)

// confTree writes dirs directories holding files small .conf files in all
// (pjsip-like sections, 1–7 KB each, all different), a few writers at once.
func confTree(root string, dirs, files int) error {
	per := max(1, files/dirs)
	work := make(chan int)
	errs := make(chan error, 1)
	var wg sync.WaitGroup
	for w := range max(2, runtime.NumCPU()) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			g := astgen.New(uint64(1000 + w))
			for d := range work {
				dir := filepath.Join(root, fmt.Sprintf("site%03d", d))
				if err := os.MkdirAll(dir, 0o755); err != nil {
					select {
					case errs <- err:
					default:
					}
					continue
				}
				for i := range per {
					if d*per+i >= files {
						break
					}
					b := g.PJSIP(1 + (d+i)%4)
					if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("endpoint%04d.conf", i)), b, 0o644); err != nil {
						select {
						case errs <- err:
						default:
						}
					}
				}
			}
		}()
	}
	for d := range dirs {
		work <- d
	}
	close(work)
	wg.Wait()
	select {
	case err := <-errs:
		return fmt.Errorf("conf tree %s: %w", root, err)
	default:
		return nil
	}
}

// mixedTree writes audio files of audioSize bytes and dialplans of about
// planSize bytes: the 16 × 32 MB audio + 4 × 23 MB dialplans.
func mixedTree(root string, audio, audioSize, plans, planSize int) error {
	for _, d := range []string{"sounds/custom", "moh", "dialplan"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			return err
		}
	}
	var wg sync.WaitGroup
	errs := make(chan error, audio+plans)
	sem := make(chan struct{}, max(2, runtime.NumCPU()))
	for i := range audio + plans {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			g := astgen.New(uint64(5000 + i))
			var name string
			var b []byte
			if i < audio {
				dir := "sounds/custom"
				if i%2 == 1 {
					dir = "moh"
				}
				name, b = filepath.Join(dir, fmt.Sprintf("prompt%02d.wav", i)), g.WAV(audioSize)
			} else {
				name, b = filepath.Join("dialplan", fmt.Sprintf("extensions-%d.conf", i-audio)), dialplan(g, planSize)
			}
			if err := os.WriteFile(filepath.Join(root, name), b, 0o644); err != nil {
				errs <- err
			}
		}()
	}
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		return fmt.Errorf("mixed tree %s: %w", root, err)
	}
	return nil
}

// dialplan returns an extensions.conf of about size bytes (astgen writes
// about 200 bytes per extension).
func dialplan(g *astgen.Gen, size int) []byte {
	return g.Dialplan(max(10, size/200))
}

// treeUsage returns the files, their bytes and the bytes they take on disk
// (allocated blocks) under root.
func treeUsage(root string) (files, size, disk int64, err error) {
	err = filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		if st, ok := fi.Sys().(*syscall.Stat_t); ok {
			disk += st.Blocks * 512
		}
		if fi.Mode().IsRegular() {
			files++
			size += fi.Size()
		}
		return nil
	})
	return files, size, disk, err
}
