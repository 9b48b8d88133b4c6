package config

import (
	"fmt"
	"strings"
	"testing"

	"github.com/BurntSushi/toml"
)

func TestJoinAndParentPath(t *testing.T) {
	p := joinKey(joinIndex(joinKey(joinIndex(joinKey("", "job"), 1), "rule"), 0), "match")
	if p != "job[1].rule[0].match" {
		t.Fatalf("path = %q", p)
	}
	if q := joinKey("node", "a.b"); q != `node."a.b"` {
		t.Fatalf("quoted path = %q", q)
	}
	for _, tc := range []struct{ in, want string }{
		{"job[1].rule[0].match", "job[1].rule[0]"},
		{"job[1].rule[0]", "job[1].rule"},
		{"job[1].rule", "job[1]"},
		{"job[1]", "job"},
		{"job", ""},
		{"", ""},
		{`node."a.b"`, "node"},
		{`node."a\".[b"`, "node"},
		{`"x.y"`, ""},
	} {
		if got := parentPath(tc.in); got != tc.want {
			t.Errorf("parentPath(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

// locText is a TOML text that exercises every construct the locator must
// step over. Positions below are line:col.
const locText = `# a comment with = and [brackets] and "quotes"
[node]   # trailing comment
name = "a#b=c"          # '#' and '=' inside a string
listen = ':1 # not = a comment'
"data_dir" = """
multi = line
[not.a.table]
""" # closing
http = '''
x = 'y'
'''
log_level = "in\"fo"

[[peer]]
name = "p1"
address.host = "x"

[[peer]]
  name = "p2"

[[job]]
name = "j1"
targets = [
  "a", # first
  "b",
  ["nested", "array"],
]
  [[job.rule]]
  match = ["x", "y"]
  [[job.rule]]
  match = "z"

[[job]]
name = "j2"
  [[job.rule]]
    action = "reload"
inline = { a = 1, "b c" = [1, 2], d.e = "f" }
when = 1979-05-27 07:32:00Z
list = [{ x = 1 }, { x = 2 }]

[asterisk]
ami = "h:1"
`

func TestLocate(t *testing.T) {
	var m map[string]any
	if _, err := toml.Decode(locText, &m); err != nil {
		t.Fatalf("locText is not valid TOML: %v", err)
	}
	l := locate([]byte(locText))
	for _, tc := range []struct {
		path string
		pos  string
	}{
		{"node", "2:1"},
		{"node.name", "3:1"},
		{"node.listen", "4:1"},
		{"node.data_dir", "5:1"},
		{"node.http", "9:1"},
		{"node.log_level", "12:1"},
		{"peer", "14:1"},
		{"peer[0]", "14:1"},
		{"peer[0].name", "15:1"},
		{"peer[0].address", "16:1"},
		{"peer[0].address.host", "16:1"},
		{"peer[1]", "18:1"},
		{"peer[1].name", "19:3"},
		{"job[0]", "21:1"},
		{"job[0].name", "22:1"},
		{"job[0].targets", "23:1"},
		{"job[0].targets[0]", "24:3"},
		{"job[0].targets[1]", "25:3"},
		{"job[0].targets[2]", "26:3"},
		{"job[0].targets[2][1]", "26:14"},
		{"job[0].rule", "28:3"},
		{"job[0].rule[0]", "28:3"},
		{"job[0].rule[0].match", "29:3"},
		{"job[0].rule[0].match[1]", "29:17"},
		{"job[0].rule[1]", "30:3"},
		{"job[0].rule[1].match", "31:3"},
		{"job[1]", "33:1"},
		{"job[1].name", "34:1"},
		{"job[1].rule", "35:3"},
		{"job[1].rule[0]", "35:3"},
		{"job[1].rule[0].action", "36:5"},
		{"job[1].rule[0].inline", "37:1"},
		{"job[1].rule[0].inline.a", "37:12"},
		{`job[1].rule[0].inline."b c"`, "37:19"},
		{`job[1].rule[0].inline."b c"[1]`, "37:31"},
		{"job[1].rule[0].inline.d.e", "37:35"},
		{"job[1].rule[0].when", "38:1"},
		{"job[1].rule[0].list", "39:1"},
		{"job[1].rule[0].list[1]", "39:20"},
		{"job[1].rule[0].list[1].x", "39:22"},
		{"asterisk", "41:1"},
		{"asterisk.ami", "42:1"},
	} {
		line, col, ok := l.lookup(tc.path)
		if got := fmt.Sprintf("%d:%d", line, col); !ok || got != tc.pos {
			t.Errorf("lookup(%q) = %s %v, want %s", tc.path, got, ok, tc.pos)
		}
	}
	for _, tc := range []struct {
		path string
		pos  string
	}{
		{"job[0].rule[1].action", "30:3"}, // absent: its [[job.rule]] header
		{"job[1].path", "33:1"},
		{"nothing.here", "0:0"},
	} {
		line, col := l.find(tc.path)
		if got := fmt.Sprintf("%d:%d", line, col); got != tc.pos {
			t.Errorf("find(%q) = %s, want %s", tc.path, got, tc.pos)
		}
	}
}

// TestLocateKeysStartThere checks, for every position the locator records
// in a real configuration, that the text there is the key, the header or
// the value it names.
func TestLocateKeysStartThere(t *testing.T) {
	src := Example()
	lines := strings.Split(src, "\n")
	l := locate([]byte(src))
	if len(l.at) < 60 {
		t.Fatalf("only %d positions recorded in the example", len(l.at))
	}
	for p := range l.at {
		line, col, _ := l.lookup(p)
		text := lines[line-1][col-1:]
		last := p[len(parentPath(p)):]
		last = strings.TrimPrefix(last, ".")
		switch {
		case strings.HasPrefix(last, "["): // an array element or [[table]]
			if strings.HasPrefix(text, "[[") {
				continue
			}
			if !strings.ContainsAny(text[:1], `"'{[0123456789`) {
				t.Errorf("%s at %d:%d: %q is not a value", p, line, col, text)
			}
		case strings.HasPrefix(text, "["):
			if !strings.Contains(lines[line-1], last) {
				t.Errorf("%s at %d:%d: header %q does not name %q", p, line, col, text, last)
			}
		default:
			if !strings.HasPrefix(text, last) {
				t.Errorf("%s at %d:%d: %q does not start with the key", p, line, col, text)
			}
		}
	}
}

func TestLocateBOMAndCRLF(t *testing.T) {
	l := locate([]byte("\xEF\xBB\xBF[node]\r\nname = \"a\"\r\n  listen = \":1\"\r\n"))
	for path, want := range map[string]string{
		"node":        "1:4",
		"node.name":   "2:1",
		"node.listen": "3:3",
	} {
		line, col, ok := l.lookup(path)
		if got := fmt.Sprintf("%d:%d", line, col); !ok || got != want {
			t.Errorf("lookup(%q) = %s, want %s", path, got, want)
		}
	}
}

// TestLocateStopsOnGarbage: the locator keeps what it found before text it
// does not understand, and never panics.
func TestLocateStopsOnGarbage(t *testing.T) {
	for _, src := range []string{
		"a = 1\n@@@\nb = 2\n",
		"a = \"unterminated\nb = 2\n",
		"a = [1, 2\n",
		"a = {x = 1\n",
		"a = '''never closed\n",
		"[a\n",
		"[[a]\n",
		"a = \"\\",
		"=",
		"a.",
		strings.Repeat("[", 10000),
		"a = " + strings.Repeat("[", 10000),
	} {
		l := locate([]byte(src))
		if strings.HasPrefix(src, "a = 1") {
			if _, _, ok := l.lookup("a"); !ok {
				t.Errorf("%q: lost key a", src)
			}
			if _, _, ok := l.lookup("b"); ok {
				t.Errorf("%q: went past garbage", src)
			}
		}
	}
}

func TestLocateTOML11InlineTables(t *testing.T) {
	src := "[node]\nt = {   # comment\n  a = 1,\n  \"q\\u0062\" = [\n    2, # two\n  ],\n  'lit' = 3,\n}\nafter = 1\n"
	var m map[string]any
	if _, err := toml.Decode(src, &m); err != nil {
		t.Fatalf("not valid TOML: %v", err)
	}
	l := locate([]byte(src))
	for path, want := range map[string]string{
		"node.t":        "2:1",
		"node.t.a":      "3:3",
		"node.t.qb":     "4:3",
		"node.t.qb[0]":  "5:5",
		"node.t.lit":    "7:3",
		"node.after":    "9:1",
		"node.t.absent": "2:1",
	} {
		line, col := l.find(path)
		if got := fmt.Sprintf("%d:%d", line, col); got != want {
			t.Errorf("find(%q) = %s, want %s", path, got, want)
		}
	}
}
