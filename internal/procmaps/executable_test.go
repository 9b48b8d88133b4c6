package procmaps

import (
	"reflect"
	"strings"
	"testing"
)

// TestExecutableMappings reads a process's smaps as the kernel writes it
// and keeps only the executable's private read-only mappings without
// pages of their own.
func TestExecutableMappings(t *testing.T) {
	const exe = "/usr/bin/pbxsync"
	smaps := strings.Join([]string{
		"00400000-00e2a000 r-xp 00000000 fd:00 1234 /usr/bin/pbxsync",
		"Size:              10408 kB",
		"Rss:                9000 kB",
		"Anonymous:             0 kB",
		"VmFlags: rd ex mr mw me",
		"00e2a000-0193c000 r--p 00a2a000 fd:00 1234 /usr/bin/pbxsync",
		"Rss:                9032 kB",
		"Anonymous:             0 kB",
		"0193c000-019f1000 rw-p 0153c000 fd:00 1234 /usr/bin/pbxsync",
		"Anonymous:           120 kB",
		// a relocated, then write-protected segment (RELRO of a PIE build)
		"019f1000-01a00000 r--p 01600000 fd:00 1234 /usr/bin/pbxsync",
		"Anonymous:            60 kB",
		"01a00000-01b00000 r--s 00000000 fd:00 99 /var/lib/pbxsync/meta.db",
		"02000000-02100000 r-xp 00000000 fd:00 77 /usr/bin/pbxsync-old",
		"02100000-02200000 r--s 00000000 fd:00 1234 /usr/bin/pbxsync",
		"c000000000-c004000000 rw-p 00000000 00:00 0 ",
		"Anonymous:         20000 kB",
		"7ffd0000-7ffd1000 r-xp 00000000 00:00 0                          [vdso]",
	}, "\n")
	got, err := executableMappings(strings.NewReader(smaps), exe)
	if err != nil {
		t.Fatal(err)
	}
	want := []exeMapping{{0x400000, 0xe2a000}, {0xe2a000, 0x193c000}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("mappings %x, want %x", got, want)
	}
	if _, err := executableMappings(strings.NewReader("zz-00e2a000 r-xp 0 fd:00 1 /usr/bin/pbxsync\n"), exe); err == nil {
		t.Error("a bad range was read without an error")
	}
}
