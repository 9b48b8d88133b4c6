package procmaps

import (
	"bufio"
	"fmt"
	"os"
	"strconv"
	"strings"
)

// Resident returns how many bytes of the files named name (an absolute
// path, or a base name for every file of that name) the process has
// resident through its mappings, summed over every such mapping
// (/proc/self/smaps; an error where there is none, as off Linux).
func Resident(name string) (int64, error) {
	f, err := os.Open("/proc/self/smaps")
	if err != nil {
		return 0, fmt.Errorf("procmaps: %w", err)
	}
	defer f.Close()
	var total int64
	in := false
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if mappingHeader(fields) {
			path := fields[len(fields)-1]
			in = len(fields) >= 6 && (path == name || strings.HasSuffix(path, "/"+name))
			continue
		}
		if in && len(fields) == 3 && fields[0] == "Rss:" {
			kb, err := strconv.ParseInt(fields[1], 10, 64)
			if err != nil {
				return 0, fmt.Errorf("procmaps: Rss %q: %w", fields[1], err)
			}
			total += kb << 10
		}
	}
	if err := sc.Err(); err != nil {
		return 0, fmt.Errorf("procmaps: read /proc/self/smaps: %w", err)
	}
	return total, nil
}

// mappingHeader reports whether the fields of an smaps line are a
// mapping's header (range, perms, offset, device, inode[, path]), not
// one of its "Key: value" lines.
func mappingHeader(fields []string) bool {
	return len(fields) >= 5 && strings.Contains(fields[0], "-") && !strings.HasSuffix(fields[0], ":")
}
