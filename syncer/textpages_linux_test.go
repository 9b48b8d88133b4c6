package syncer

import (
	"bufio"
	"bytes"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// TestCleanReadOnlyMappings: of the executable's mappings only the
// read-only ones without a copied page are released; other files'
// mappings and anonymous ones are not.
func TestCleanReadOnlyMappings(t *testing.T) {
	const smaps = `00400000-00dd2000 r-xp 00000000 fe:00 11706413                           /usr/bin/pbxsync
Size:              10056 kB
Rss:                8516 kB
Anonymous:             0 kB
VmFlags: rd ex mr mw me dw sd
00dd2000-0189e000 r--p 009d2000 fe:00 11706413                           /usr/bin/pbxsync
Rss:                9072 kB
Anonymous:             0 kB
0189e000-01953000 r--p 0149e000 fe:00 11706413                           /usr/bin/pbxsync
Rss:                 460 kB
Anonymous:           108 kB
01953000-01960000 rw-p 01553000 fe:00 11706413                           /usr/bin/pbxsync
Rss:                 460 kB
Anonymous:             0 kB
0e4e3000-0e504000 rw-p 00000000 00:00 0                                  [heap]
Anonymous:           132 kB
7fdf90000000-7fdf98000000 r--s 00000000 fe:00 14263522                   /var/lib/pbxsync/store/meta.db
Anonymous:             0 kB
7fdffe674000-7fdffe7ca000 r-xp 00026000 fe:01 11706413                   /usr/lib/x86_64-linux-gnu/libc.so.6
Anonymous:             0 kB
`
	got := cleanReadOnlyMappings([]byte(smaps), 0xfe, 0, 11706413)
	want := [][2]uintptr{{0x400000, 0xdd2000}, {0xdd2000, 0x189e000}}
	if !slices.Equal(got, want) {
		t.Fatalf("mappings %x; want %x", got, want)
	}
}

// TestReleaseText: the test binary's own code leaves the process's
// resident set (most of it: the test runs on and maps back what it uses).
func TestReleaseText(t *testing.T) {
	before := exeRSS(t)
	if before < 1<<20 {
		t.Fatalf("the test binary has %d bytes resident; want some to release", before)
	}
	if err := releaseText(); err != nil {
		t.Fatal(err)
	}
	if after := exeRSS(t); after > before/2 {
		t.Fatalf("the test binary's resident pages: %d bytes before, %d after; want less than half", before, after)
	}
}

// exeRSS sums the Rss of the mappings of the running executable.
func exeRSS(t *testing.T) int64 {
	t.Helper()
	var st unix.Stat_t
	if err := unix.Stat("/proc/self/exe", &st); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile("/proc/self/smaps")
	if err != nil {
		t.Fatal(err)
	}
	var sum int64
	in := false
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) >= 5 && strings.Contains(f[0], "-") && !strings.HasSuffix(f[0], ":") {
			in = f[4] == strconv.FormatUint(st.Ino, 10)
			continue
		}
		if in && len(f) == 3 && f[0] == "Rss:" {
			kb, _ := strconv.ParseInt(f[1], 10, 64)
			sum += kb << 10
		}
	}
	return sum
}
