package hostmon

import (
	"errors"
	"path"
	"strings"
	"testing"
)

func TestFilterMatch(t *testing.T) {
	type tc struct {
		rel   string
		isDir bool
		want  bool
	}
	tests := []struct {
		name             string
		include, exclude []string
		cases            []tc
	}{
		{
			name: "empty include takes everything",
			cases: []tc{
				{"extensions.conf", false, true},
				{"a/b/c", false, true},
				{"a", true, true},
				{"a/b", true, true},
				{"", true, false},
				{".", true, false},
			},
		},
		{
			name: "built-in excludes at any depth",
			cases: []tc{
				{"astdb.sqlite3", false, false},
				{"astdb.sqlite3-journal", false, false},
				{"astdb.sqlite3-wal", false, false},
				{"db/astdb.sqlite3", false, false},
				{"astdb.sqlite", false, true},
				{".pbxsync", true, false},
				{".pbxsync-stage", true, false},
				{".pbxsync-stage/x.conf", false, false},
				{"a/.pbxsync.tmp.123", false, false},
				{"x.pbxsync", false, true},
				{".extensions.conf.swp", false, false},
				{"a/.x.conf.swo", false, false},
				{"a/.x.conf.swx", false, false},
				{"sip.conf~", false, false},
				{"a/.#sip.conf", false, false},
				{"4913", false, false},
				{"a/4913", false, false},
				{"49130", false, true},
				{"swp", false, true},
			},
		},
		{
			name:    "base-name include matches at any depth",
			include: []string{"*.conf"},
			cases: []tc{
				{"x.conf", false, true},
				{"a/b/x.conf", false, true},
				{"x.conf.bak", false, false},
				{"a/x.txt", false, false},
				// directories lead to possible matches
				{"a", true, true},
				{"a/b", true, true},
				// a directory named like the pattern takes its tree
				{"d.conf", true, true},
				{"d.conf/readme", false, true},
			},
		},
		{
			name:    "star and question do not cross slash",
			include: []string{"a/*.conf", "b/?.txt"},
			cases: []tc{
				{"a/x.conf", false, true},
				{"a/b/x.conf", false, false},
				{"x.conf", false, false},
				{"b/1.txt", false, true},
				{"b/12.txt", false, false},
				{"b/c/1.txt", false, false},
				{"a", true, true},
				{"a/b", true, false},
				{"b", true, true},
				{"c", true, false},
			},
		},
		{
			name:    "character classes",
			include: []string{"[a-c]*.conf", "d/[!x]", "e/[^x]"},
			cases: []tc{
				{"b.conf", false, true},
				{"z/cdr.conf", false, true},
				{"d.conf", false, false},
				{"d/y", false, true},
				{"d/x", false, false},
				{"e/y", false, true},
				{"e/x", false, false},
				{"e/!", false, true},
			},
		},
		{
			name:    "double star",
			include: []string{"sounds/**/*.gsm", "**/keys/*", "vm/**"},
			cases: []tc{
				{"sounds/a.gsm", false, true},
				{"sounds/en/a.gsm", false, true},
				{"sounds/en/x/y/a.gsm", false, true},
				{"sounds/en/a.wav", false, false},
				{"other/a.gsm", false, false},
				{"keys/k1", false, true},
				{"a/b/keys/k1", false, true},
				{"a/b/keys/k1/deeper", false, true}, // parent keys/k1 matches
				{"vm", true, true},
				{"vm/default/1000/INBOX/msg0000.wav", false, true},
				{"sounds", true, true},
				{"sounds/en", true, true},
				{"a/b", true, true}, // **/keys/* could match below
			},
		},
		{
			name:    "anchored with leading slash",
			include: []string{"/extensions.conf"},
			cases: []tc{
				{"extensions.conf", false, true},
				{"a/extensions.conf", false, false},
				{"a", true, false},
			},
		},
		{
			name:    "include names a directory: its whole tree",
			include: []string{"sounds", "keys/"},
			cases: []tc{
				{"sounds", true, true},
				{"sounds/en/hello.gsm", false, true},
				{"x/sounds/en/hello.gsm", false, true},
				{"keys", true, true},
				{"keys/a.pem", false, true},
				{"keys", false, false}, // dir-only pattern on a file
				{"etc", true, true},    // "sounds" is a base-name pattern: could be below
			},
		},
		{
			name:    "exclude beats include and prunes subtrees",
			include: []string{"*.conf", "sounds"},
			exclude: []string{"old/", "sounds/tmp", "*_custom.conf"},
			cases: []tc{
				{"sip.conf", false, true},
				{"old", true, false},
				{"old/sip.conf", false, false},
				{"a/old/sip.conf", false, false}, // old/ is a base-name dir pattern
				{"old", false, false},            // not a directory: old/ does not apply, *.conf does not match
				{"sounds/tmp", true, false},
				{"sounds/tmp/x.conf", false, false},
				{"sounds/tmpx", false, true},
				{"a/sounds/tmp/x.conf", false, true}, // sounds/tmp is anchored
				{"sip_custom.conf", false, false},
			},
		},
		{
			name:    "exclude double star",
			exclude: []string{"**/cache/**", "logs/**"},
			cases: []tc{
				{"cache", true, false},
				{"a/cache", true, false},
				{"a/cache/x", false, false},
				{"logs", true, false},
				{"logs/x", false, false},
				{"a/logs/x", false, true},
				{"a/x", false, true},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, err := NewFilter(tt.include, tt.exclude)
			if err != nil {
				t.Fatal(err)
			}
			for _, c := range tt.cases {
				if got := f.Match(c.rel, c.isDir); got != c.want {
					t.Errorf("Match(%q, dir=%v) = %v, want %v", c.rel, c.isDir, got, c.want)
				}
				if c.isDir && c.rel != "" && c.rel != "." {
					if got := f.ExcludesDir(c.rel); got != !c.want {
						t.Errorf("ExcludesDir(%q) = %v, want %v", c.rel, got, !c.want)
					}
				}
			}
		})
	}
}

func TestFilterExcludesDir(t *testing.T) {
	f, err := NewFilter([]string{"sounds/custom/**", "*.conf"}, []string{"tmp"})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		rel  string
		want bool
	}{
		{"", false},
		{".", false},
		{"sounds", false},
		{"sounds/custom", false},
		{"sounds/custom/en", false},
		{"sounds/en", false}, // *.conf could match below
		{"tmp", true},
		{"a/tmp", true},
		{"a/tmp/b", true},
		{".pbxsync-stage", true},
	}
	for _, tt := range tests {
		if got := f.ExcludesDir(tt.rel); got != tt.want {
			t.Errorf("ExcludesDir(%q) = %v, want %v", tt.rel, got, tt.want)
		}
	}

	// Without a base-name include only the directories leading to the
	// anchored include survive.
	f, err = NewFilter([]string{"sounds/custom/**"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	for rel, want := range map[string]bool{
		"sounds":           false,
		"sounds/custom":    false,
		"sounds/custom/en": false,
		"sounds/en":        true,
		"voicemail":        true,
	} {
		if got := f.ExcludesDir(rel); got != want {
			t.Errorf("anchored only: ExcludesDir(%q) = %v, want %v", rel, got, want)
		}
	}
}

func TestNewFilterErrors(t *testing.T) {
	for _, tt := range []struct {
		include, exclude []string
		want             string
	}{
		{include: []string{"[a-"}, want: `include pattern: bad pattern "[a-"`},
		{exclude: []string{"a/[b"}, want: `exclude pattern: bad pattern "a/[b"`},
		{include: []string{""}, want: `bad pattern "": empty`},
		{include: []string{"/"}, want: `bad pattern "/": empty`},
		{include: []string{"a//b"}, want: "empty path element"},
		{exclude: []string{"../x"}, want: `contains ".."`},
		{exclude: []string{"./x"}, want: `contains "."`},
		{include: []string{"a\x00"}, want: "NUL"},
	} {
		_, err := NewFilter(tt.include, tt.exclude)
		if err == nil {
			t.Errorf("NewFilter(%q, %q): no error", tt.include, tt.exclude)
			continue
		}
		if !strings.Contains(err.Error(), tt.want) {
			t.Errorf("NewFilter(%q, %q) = %v, want it to mention %s", tt.include, tt.exclude, err, tt.want)
		}
	}
	_, err := NewFilter([]string{"[z-a"}, nil)
	if !errors.Is(err, path.ErrBadPattern) {
		t.Errorf("bad glob: %v does not wrap path.ErrBadPattern", err)
	}
}

func TestBuiltinExcludesIsACopy(t *testing.T) {
	b := BuiltinExcludes()
	b[0] = "changed"
	if BuiltinExcludes()[0] == "changed" {
		t.Fatal("BuiltinExcludes returns shared state")
	}
}
