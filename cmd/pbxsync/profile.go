package main

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime/pprof"
)

// profileEnv names a directory: when set, `pbxsync run` writes a CPU
// profile of its whole run to DIR/cpu-<pid>.pprof (for measuring, see
// docs/performance.md; off unless set).
const profileEnv = "PBXSYNC_CPUPROFILE_DIR"

// startProfile starts the CPU profile profileEnv asks for and returns the
// function that ends it (a no-op when the variable is unset).
func startProfile() (func(), error) {
	dir := os.Getenv(profileEnv)
	if dir == "" {
		return func() {}, nil
	}
	name := filepath.Join(dir, fmt.Sprintf("cpu-%d.pprof", os.Getpid()))
	f, err := os.Create(name)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", profileEnv, err)
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return nil, fmt.Errorf("%s: %w", profileEnv, err)
	}
	return func() { pprof.StopCPUProfile(); f.Close() }, nil
}
