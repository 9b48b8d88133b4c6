package hostmon

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"
)

// Disk is the free space of the filesystem holding one path.
type Disk struct {
	Path      string `json:"path"`
	FreeBytes uint64 `json:"free_bytes"`
	FreeFiles uint64 `json:"free_files"`
}

// HostState is what this host tells its peers about itself, besides its
// jobs: free space where pbxsync writes and the load average.
type HostState struct {
	Disks []Disk  `json:"disks"`
	Load1 float64 `json:"load1"`
}

// ReadHostState measures free space for each path (the data_dir and the job
// roots) and reads the 1-minute load average. A path that cannot be
// measured is left out; the error names it.
func ReadHostState(paths []string) (HostState, error) {
	var st HostState
	var errs []string
	for _, p := range paths {
		var fs syscall.Statfs_t
		if err := syscall.Statfs(p, &fs); err != nil {
			errs = append(errs, fmt.Sprintf("statfs %s: %v", p, err))
			continue
		}
		st.Disks = append(st.Disks, Disk{Path: p, FreeBytes: uint64(fs.Bavail) * uint64(fs.Bsize), FreeFiles: uint64(fs.Ffree)})
	}
	if b, err := os.ReadFile("/proc/loadavg"); err == nil {
		if f := strings.Fields(string(b)); len(f) > 0 {
			st.Load1, _ = strconv.ParseFloat(f[0], 64)
		}
	}
	if len(errs) > 0 {
		return st, fmt.Errorf("host state: %s", strings.Join(errs, "; "))
	}
	return st, nil
}
