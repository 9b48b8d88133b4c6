package syncer

import (
	"io/fs"
	"testing"

	"pbxsync/internal/index"
)

func TestParseUmask(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		status string
		want   fs.FileMode
		ok     bool
	}{
		{"Name:\tpbxsync\nUmask:\t0022\nState:\tS (sleeping)\n", 0o022, true},
		{"Umask:\t0077\n", 0o077, true},
		{"Umask:\t0000", 0, true},
		{"Name:\tpbxsync\nState:\tS (sleeping)\n", 0, false}, // a kernel before 4.7
		{"Umask:\t0999\n", 0, false},
		{"Umask:\t01000\n", 0, false},
		{"Umask:\n", 0, false},
		{"", 0, false},
	} {
		got, ok := parseUmask([]byte(c.status))
		if got != c.want || ok != c.ok {
			t.Errorf("parseUmask(%q) = %#o, %v; want %#o, %v", c.status, got, ok, c.want, c.ok)
		}
	}
}

func TestStagingPerm(t *testing.T) {
	t.Parallel()
	file := func(mode fs.FileMode) index.Item {
		return index.Item{Path: "f", Kind: index.KindFile, Mode: mode, MTime: 1}
	}
	for _, c := range []struct {
		name      string
		umask     fs.FileMode
		known     bool
		it        index.Item
		want      fs.FileMode
		wantExact bool
	}{
		{"umask unknown", 0, false, file(0o644), 0o600, false},
		{"kept whole by 022", 0o022, true, file(0o644), 0o644, true},
		{"executable", 0o022, true, file(0o755), 0o755, true},
		{"private", 0o077, true, file(0o600), 0o600, true},
		{"group write cut by 022", 0o022, true, file(0o664), 0o600, false},
		{"umask 0", 0, true, file(0o666), 0o666, true},
		{"setuid waits for the apply", 0o022, true, file(fs.ModeSetuid | 0o755), 0o600, false},
		{"sticky waits for the apply", 0o022, true, file(fs.ModeSticky | 0o644), 0o600, false},
		{"no mode known", 0o022, true, index.Item{Path: "f", Kind: index.KindFile}, 0o600, false},
	} {
		a := &Applier{Umask: c.umask, UmaskKnown: c.known}
		perm, exact := a.stagingPerm(c.it)
		if perm != c.want || exact != c.wantExact {
			t.Errorf("%s: stagingPerm(mode %v) = %#o, %v; want %#o, %v", c.name, c.it.Mode, perm, exact, c.want, c.wantExact)
		}
	}
}
