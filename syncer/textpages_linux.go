package syncer

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// releaseText takes the pages of the agent's own executable that are
// mapped read-only (its code and constant data: 17 MiB of a 32 MB binary
// after a large sync, most of the agent's file-backed RSS when idle) out
// of its resident set. They stay in the page cache: what the agent runs
// next maps back the few it uses, as minor faults. Only mappings holding
// no private copy of a page are touched (smaps' Anonymous: 0): on a
// private file mapping MADV_DONTNEED discards such copies (a dynamic
// linker's relocations made read-only afterwards), where it only unmaps
// file pages.
func releaseText() error {
	var st unix.Stat_t
	if err := unix.Stat("/proc/self/exe", &st); err != nil {
		return fmt.Errorf("release the executable's pages: %w", err)
	}
	smaps, err := os.ReadFile("/proc/self/smaps")
	if err != nil {
		return fmt.Errorf("release the executable's pages: %w", err)
	}
	for _, m := range cleanReadOnlyMappings(smaps, unix.Major(st.Dev), unix.Minor(st.Dev), st.Ino) {
		if _, _, e := unix.Syscall(unix.SYS_MADVISE, m[0], m[1]-m[0], unix.MADV_DONTNEED); e != 0 {
			return fmt.Errorf("release the executable's pages: madvise: %w", e)
		}
	}
	return nil
}

// cleanReadOnlyMappings returns the [start, end) address ranges of the
// mappings in smaps (the text of /proc/self/smaps) of the file with
// device major:minor and inode ino that are not writable and hold no
// anonymous (copied) page.
func cleanReadOnlyMappings(smaps []byte, major, minor uint32, ino uint64) [][2]uintptr {
	var out [][2]uintptr
	var cur [2]uintptr
	match := false // cur is a candidate until its Anonymous line says otherwise
	sc := bufio.NewScanner(bytes.NewReader(smaps))
	for sc.Scan() {
		line := sc.Text()
		if v, ok := strings.CutPrefix(line, "Anonymous:"); ok {
			if match && strings.TrimSpace(v) == "0 kB" {
				out = append(out, cur)
			}
			match = false
			continue
		}
		f := strings.Fields(line)
		if len(f) < 5 || !strings.Contains(f[0], "-") || strings.HasSuffix(f[0], ":") {
			continue // a field line of the mapping above
		}
		// a mapping: start-end perms offset major:minor inode [path]
		match = false
		r, ok := mappingRange(f[0])
		if !ok || len(f[1]) < 2 || f[1][0] != 'r' || f[1][1] == 'w' {
			continue
		}
		ma, mi, ok := strings.Cut(f[3], ":")
		if !ok || !hexIs(ma, uint64(major)) || !hexIs(mi, uint64(minor)) {
			continue
		}
		if n, err := strconv.ParseUint(f[4], 10, 64); err != nil || n != ino {
			continue
		}
		cur, match = r, true
	}
	return out
}

// mappingRange parses "start-end" (hex) of a mapping.
func mappingRange(s string) ([2]uintptr, bool) {
	a, b, ok := strings.Cut(s, "-")
	if !ok {
		return [2]uintptr{}, false
	}
	start, err1 := strconv.ParseUint(a, 16, 64)
	end, err2 := strconv.ParseUint(b, 16, 64)
	if err1 != nil || err2 != nil || end <= start {
		return [2]uintptr{}, false
	}
	return [2]uintptr{uintptr(start), uintptr(end)}, true
}

// hexIs reports whether s is the hexadecimal number n.
func hexIs(s string, n uint64) bool {
	v, err := strconv.ParseUint(s, 16, 64)
	return err == nil && v == n
}
