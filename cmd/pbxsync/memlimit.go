package main

import (
	"log/slog"
	"math"
	"os"
	"runtime/debug"

	"pbxsync/internal/config"
)

// applyMemoryLimit sets the Go runtime's soft memory limit to [node]
// memory_limit (0: none). Near the limit the collector runs more often
// instead of letting the heap grow to twice its live size, so the agent's
// resident memory follows its live heap; it is never an error to exceed
// it. GOMEMLIMIT in the environment wins over the configuration.
func applyMemoryLimit(n config.Node, log *slog.Logger) {
	if env := os.Getenv("GOMEMLIMIT"); env != "" {
		log.Debug("memory limit from GOMEMLIMIT; [node] memory_limit ignored", "GOMEMLIMIT", env)
		return
	}
	limit := n.MemoryLimit
	if limit <= 0 {
		limit = math.MaxInt64 // the runtime's "no limit"
	}
	if old := debug.SetMemoryLimit(limit); old != limit {
		log.Debug("memory limit set", "bytes", n.MemoryLimit)
	}
}
