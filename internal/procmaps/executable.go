package procmaps

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
)

// exeMapping is one mapping of the process's executable that
// ReleaseExecutable may let go of.
type exeMapping struct {
	start, end uint64
}

// ReleaseExecutable takes the pages of the process's own executable out
// of its resident set: the read-only mappings of the file (code, read-only
// data) that hold no page of their own. It returns how many bytes of
// mappings it released.
//
// A Go binary's package initialisers are spread over its whole text, and
// the kernel maps the pages around each page a process touches
// (fault-around), so a started agent has nearly all of its 20 MiB of code
// and read-only data resident, though it runs a fraction of it afterwards.
// The pages stay in the page cache: what the process runs next maps back
// at a minor fault each (no I/O), and the rest is page cache the kernel may
// reclaim like any other, no longer counted in the process's RSS. A
// mapping with pages of its own (copy-on-write: relocations a position-
// independent build wrote before making them read-only) is left alone:
// dropping those would bring back the unrelocated file.
func ReleaseExecutable() (int64, error) {
	exe, err := os.Readlink("/proc/self/exe")
	if err != nil {
		return 0, fmt.Errorf("procmaps: %w", err)
	}
	f, err := os.Open("/proc/self/smaps")
	if err != nil {
		return 0, fmt.Errorf("procmaps: %w", err)
	}
	maps, err := executableMappings(f, exe)
	f.Close()
	if err != nil {
		return 0, err
	}
	var total int64
	for _, m := range maps {
		if err := DropPages(uintptr(m.start), int64(m.end-m.start)); err != nil {
			return total, fmt.Errorf("procmaps: release %s %x-%x: %w", exe, m.start, m.end, err)
		}
		total += int64(m.end - m.start)
	}
	return total, nil
}

// executableMappings reads smaps (the format of /proc/self/smaps) for the
// read-only mappings of the file exe that hold no anonymous page.
func executableMappings(smaps io.Reader, exe string) ([]exeMapping, error) {
	var out []exeMapping
	var cur exeMapping
	in := false
	done := func() {
		if in {
			out = append(out, cur)
		}
		in = false
	}
	sc := bufio.NewScanner(smaps)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if mappingHeader(fields) {
			done()
			if len(fields) != 6 || fields[5] != exe || len(fields[1]) != 4 || fields[1][1] == 'w' || fields[1][3] != 'p' {
				continue
			}
			lo, hi, ok := strings.Cut(fields[0], "-")
			a, err1 := strconv.ParseUint(lo, 16, 64)
			b, err2 := strconv.ParseUint(hi, 16, 64)
			if !ok || err1 != nil || err2 != nil || b <= a {
				return nil, fmt.Errorf("procmaps: smaps: bad range %q", fields[0])
			}
			cur, in = exeMapping{start: a, end: b}, true
			continue
		}
		if in && len(fields) == 3 && fields[0] == "Anonymous:" && fields[1] != "0" {
			in = false // copy-on-write pages: keep the mapping as it is
		}
	}
	done()
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("procmaps: read smaps: %w", err)
	}
	return out, nil
}
