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
// e.g. "16G") in a sparse image under work, attaches it to a loop device
// with direct I/O (the file system's own page cache only, as on a disk,
// not a second one of the image file), mounts it at work/fs and returns
// that directory and how to take it down again (which also removes the
// image unless keep). Both rsync and the agents then run on a file
// system nobody churned before: on a shared one, a mass deletion minutes
// earlier makes file creation several times slower (ext4 without a
// journal, as / is on the benchmark machine), so back-to-back runs there
// are not comparable. Its inode tables and journal are made at once (no
// lazy initialisation writing in the background during the runs). Needs
// root, mkfs.ext4, losetup and mount.
func freshFS(ctx context.Context, work, size string, keep bool) (dir string, takeDown func() error, err error) {
	img := filepath.Join(work, "fs.img")
	dir = filepath.Join(work, "fs")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", nil, err
	}
	run := func(args ...string) (string, error) {
		out, err := exec.CommandContext(ctx, args[0], args[1:]...).CombinedOutput()
		if err != nil {
			return "", fmt.Errorf("-fs %s: %s: %w: %s", size, strings.Join(args, " "), err, strings.TrimSpace(string(out)))
		}
		return strings.TrimSpace(string(out)), nil
	}
	var dev string
	undo := func() {
		if dev != "" {
			exec.Command("losetup", "-d", dev).Run()
		}
		os.Remove(img)
	}
	if _, err := run("truncate", "-s", size, img); err != nil {
		undo()
		return "", nil, err
	}
	if _, err := run("mkfs.ext4", "-q", "-F", "-E", "lazy_itable_init=0,lazy_journal_init=0", img); err != nil {
		undo()
		return "", nil, err
	}
	if dev, err = run("losetup", "--find", "--show", "--direct-io=on", img); err != nil {
		undo()
		return "", nil, err
	}
	if _, err := run("mount", dev, dir); err != nil {
		undo()
		return "", nil, err
	}
	takeDown = func() error {
		if out, err := exec.Command("umount", dir).CombinedOutput(); err != nil {
			return fmt.Errorf("umount %s: %w: %s (loop device %s, image %s)", dir, err, strings.TrimSpace(string(out)), dev, img)
		}
		if out, err := exec.Command("losetup", "-d", dev).CombinedOutput(); err != nil {
			return fmt.Errorf("losetup -d %s: %w: %s", dev, err, strings.TrimSpace(string(out)))
		}
		if keep {
			return nil
		}
		return os.Remove(img)
	}
	return dir, takeDown, nil
}
