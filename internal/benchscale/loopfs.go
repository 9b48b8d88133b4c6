package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// freshFS makes an ext4 file system of size (as truncate(1) takes it,
// e.g. "16G") in a sparse image under work, mounts it through a loop
// device at work/fs and returns that directory and how to unmount it
// (which also removes the image unless keep). Both rsync and the agents
// then run on a file system nobody churned before: on a shared one, a
// mass deletion minutes earlier makes file creation several times
// slower (ext4 without a journal, as / is on the benchmark machine), so
// back-to-back runs there are not comparable. Its inode tables and
// journal are made at once (no lazy initialisation writing in the
// background during the runs). Needs root, mkfs.ext4 and mount.
func freshFS(ctx context.Context, work, size string, keep bool) (dir string, unmount func() error, err error) {
	img := filepath.Join(work, "fs.img")
	dir = filepath.Join(work, "fs")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", nil, err
	}
	steps := [][]string{
		{"truncate", "-s", size, img},
		{"mkfs.ext4", "-q", "-F", "-E", "lazy_itable_init=0,lazy_journal_init=0", img},
		{"mount", "-o", "loop", img, dir},
	}
	for _, s := range steps {
		if out, err := exec.CommandContext(ctx, s[0], s[1:]...).CombinedOutput(); err != nil {
			os.Remove(img)
			return "", nil, fmt.Errorf("-fs %s: %s: %w: %s", size, strings.Join(s, " "), err, strings.TrimSpace(string(out)))
		}
	}
	unmount = func() error {
		if out, err := exec.Command("umount", dir).CombinedOutput(); err != nil {
			return fmt.Errorf("umount %s: %w: %s (the image is %s)", dir, err, strings.TrimSpace(string(out)), img)
		}
		if keep {
			return nil
		}
		return os.Remove(img)
	}
	return dir, unmount, nil
}
