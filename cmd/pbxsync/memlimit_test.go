package main

import (
	"io"
	"log/slog"
	"math"
	"runtime/debug"
	"testing"

	"pbxsync/internal/config"
)

func TestApplyMemoryLimit(t *testing.T) {
	t.Setenv("GOMEMLIMIT", "")
	before := debug.SetMemoryLimit(-1)
	t.Cleanup(func() { debug.SetMemoryLimit(before) })
	log := slog.New(slog.NewTextHandler(io.Discard, nil))

	applyMemoryLimit(config.Node{MemoryLimit: 48 << 20}, log)
	if got := debug.SetMemoryLimit(-1); got != 48<<20 {
		t.Errorf("limit after memory_limit = 48MiB: %d", got)
	}
	applyMemoryLimit(config.Node{MemoryLimit: 0}, log)
	if got := debug.SetMemoryLimit(-1); got != math.MaxInt64 {
		t.Errorf("limit after memory_limit = off: %d, want none (MaxInt64)", got)
	}
	t.Setenv("GOMEMLIMIT", "100MiB")
	applyMemoryLimit(config.Node{MemoryLimit: 48 << 20}, log)
	if got := debug.SetMemoryLimit(-1); got != math.MaxInt64 {
		t.Errorf("limit with GOMEMLIMIT set: %d, want the environment's (here none was applied)", got)
	}
}
