package config

import (
	"crypto/ed25519"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"pbxsync/internal/identity"
)

// Valid node IDs: IDFromPublicKey of 32 bytes of 1, 2, 3 (see TestIDs).
const (
	id1 = "OLGW5BBCYQD7WU-3IJQ2IPCEYLPXZ-WX5QXX6XQ5GC6X-Z2UQ7AFJWG6JQF"
	id2 = "OWDXXNA5HE5V7R-OCFLTTA5TMN3IH-AB2BRRMSLLCTPE-2P6EVMVXOZJFA5"
	id3 = "MSFKLRLZ7MYPHW-CXXITMX23WIIDO-D2SETXUSM2BV4K-A6PTTCTWKBEFQM"
)

func testID(b byte) identity.ID {
	return identity.IDFromPublicKey(ed25519.PublicKey(bytesOf(b, ed25519.PublicKeySize)))
}

func bytesOf(b byte, n int) []byte {
	out := make([]byte, n)
	for i := range out {
		out[i] = b
	}
	return out
}

func TestIDs(t *testing.T) {
	for i, want := range []string{id1, id2, id3} {
		if got := testID(byte(i + 1)).String(); got != want {
			t.Errorf("ID of key %d = %s, want %s", i+1, got, want)
		}
	}
}

// Building blocks of the test configurations; line numbers in the cases
// below count from them.
const (
	// node: lines 1-3
	node = "[node]\nname = \"a\"\nlisten = \":7420\"\n"
	// head: node a and peer b, lines 1-7
	head = node + "[[peer]]\nname = \"b\"\naddress = \"10.0.0.2:7420\"\nid = \"" + id2 + "\"\n"
	// peerC: 4 lines
	peerC = "[[peer]]\nname = \"c\"\naddress = \"10.0.0.3:7420\"\nid = \"" + id3 + "\"\n"
	// job: a push job from a to b; after head it is lines 8-12
	job = "[[job]]\nname = \"conf\"\npath = \"/etc/asterisk\"\nsource = \"a\"\ntargets = [\"b\"]\n"
	// pg: a postgres job without dsn, lines 8-13 after head
	pg = "[[job]]\nname = \"rt\"\ntype = \"postgres\"\ntables = [\"ps_endpoints\"]\nsource = \"a\"\ntargets = [\"b\"]\n"
)

type want struct {
	pos string // "f.toml:LINE:COL" or "f.toml"
	msg string // contained in the message
}

type errCase struct {
	name string
	text string
	want []want
}

var errCases = []errCase{
	// Syntax errors, from the TOML decoder.
	{"syntax unclosed table", "[node", []want{{"f.toml:1:5", "syntax error: expected '.' or ']' to end table name, but got end of file"}}},
	{"syntax duplicate key", "[node]\nname = \"a\"\nname = \"b\"\n", []want{{"f.toml:3:1", "syntax error: Key 'node.name' has already been defined"}}},
	{"syntax redefined table", node + "[node]\n", []want{{"f.toml:4:2", "syntax error: Key 'node' has already been defined"}}},
	{"syntax bad escape", "[node]\nname = \"a\\q\"\n", []want{{"f.toml:2:9", `syntax error: invalid escape in string '\q'`}}},
	{"syntax missing value", head + "[[job]]\nname =\n", []want{{"f.toml:9:7", "syntax error: expected value"}}},

	// Wrong types.
	{"wrong type", "[node]\nname = 7\nlisten = \":1\"\n", []want{{"f.toml:2:1", "node.name: expected a string, got integer"}}},
	// Without this node's name, "a" may be it: no cascade of unknown names.
	{"wrong type node name", "[node]\nname = 7\nlisten = \":1\"\n" + head[len(node):] + job, []want{{"f.toml:2:1", "node.name: expected a string, got integer"}}},
	{"wrong type keep", head + job + "keep = \"20\"\n", []want{{"f.toml:13:1", `job "conf": job.keep: expected an integer, got string`}}},
	{"wrong type element", head + "[[job]]\nname = \"conf\"\npath = \"/x\"\nsource = \"a\"\ntargets = [\"b\", 3]\n",
		[]want{{"f.toml:12:17", `job "conf": job.targets: expected a list of strings, element 2 is an integer`}}},
	{"wrong type table", "node = \"a\"\n", []want{{"f.toml:1:1", "node: expected a table ([node]), got string"}}},
	{"wrong type array of tables", node + "[peer]\nname = \"b\"\n", []want{{"f.toml:4:1", "peer: expected an array of tables ([[peer]]), got table"}}},
	{"wrong type array element", "peer = [1]\n" + node, []want{{"f.toml:1:9", "peer: expected an array of tables ([[peer]]), element 1 is an integer"}}},
	{"wrong type duration", head + job + "debounce = 20\n", []want{{"f.toml:13:1", `job.debounce: expected a duration string like "20ms" or "5s", got integer`}}},
	{"wrong type match", head + job + "[[job.rule]]\nmatch = 5\naction = \"restart\"\n", []want{{"f.toml:14:1", "job.rule.match: expected a string or a list of strings, got integer"}}},

	// Unknown keys.
	{"unknown top-level key", "colour = 1\n" + head, []want{{"f.toml:1:1", `unknown key "colour"`}}},
	{"unknown key in peer", head + "colour = 1\n", []want{{"f.toml:8:1", `peer "b": unknown key "peer.colour"`}}},
	{"unknown key in job", head + job + "colour = \"red\"\n", []want{{"f.toml:13:1", `job "conf": unknown key "job.colour"`}}},
	{"unknown key in rule", head + job + "  [[job.rule]]\n  match = \"x.conf\"\n  action = \"reload\"\n  colour = \"red\"\n",
		[]want{{"f.toml:16:3", `job "conf" rule #1: unknown key "job.rule.colour"`}}},
	// A misspelt key names the key it probably is.
	{"misspelt node key", "[node]\nname = \"a\"\nlisten = \":1\"\nlisen = \":2\"\n",
		[]want{{"f.toml:4:1", `unknown key "node.lisen" (did you mean "node.listen"?)`}}},
	{"swapped letters in a job key", head + job + "tragets = [\"b\"]\n",
		[]want{{"f.toml:13:1", `job "conf": unknown key "job.tragets" (did you mean "job.targets"?)`}}},
	{"misspelt table", "[nod]\nname = \"a\"\n" + head, []want{{"f.toml:1:1", `unknown key "nod" (did you mean "node"?)`}}},
	{"unknown key in second rule", head + job + "[[job.rule]]\nmatch = \"x\"\ncheck = \"true\"\n[[job.rule]]\nmatch = \"y\"\ncheck = \"true\"\n  \"odd key\" = 1\n",
		[]want{{"f.toml:19:3", `job "conf" rule #2: unknown key "job.rule.\"odd key\""`}}},
	{"unknown sub-table", head + job + "[job.extra]\nx = 1\n", []want{{"f.toml:13:1", `job "conf": unknown key "job.extra"`}}},
	{"unknown key in asterisk", head + "[asterisk]\nlog = \"/l\"\nport = 5038\n", []want{{"f.toml:10:1", `unknown key "asterisk.port"`}}},

	// Missing required keys.
	{"missing listen", "[node]\nname = \"a\"\n", []want{{"f.toml:1:1", `missing required key "node.listen"`}}},
	{"missing node", "", []want{{"f.toml", `missing required key "node.listen"`}, {"f.toml", `missing required key "node.name"`}}},
	{"missing peer keys", node + "[[peer]]\n", []want{
		{"f.toml:4:1", `peer #1: missing required key "peer.id"`},
		{"f.toml:4:1", `peer #1: missing required key "peer.name"`},
	}},
	{"missing job name", head + "[[job]]\npath = \"/x\"\nsource = \"a\"\ntargets = [\"b\"]\n", []want{{"f.toml:8:1", `job #1: missing required key "job.name"`}}},
	{"missing files path", head + "[[job]]\nname = \"conf\"\nsource = \"a\"\ntargets = [\"b\"]\n", []want{{"f.toml:8:1", `job "conf": missing required key "job.path"`}}},
	{"missing push source", head + "[[job]]\nname = \"conf\"\npath = \"/x\"\ntargets = [\"b\"]\n", []want{{"f.toml:8:1", `job "conf": missing required key "job.source"`}}},
	{"missing push targets", head + "[[job]]\nname = \"conf\"\npath = \"/x\"\nsource = \"a\"\n", []want{{"f.toml:8:1", `job "conf": missing required key "job.targets"`}}},
	{"missing hook keys", head + "[[on_peer_down]]\n", []want{
		{"f.toml:8:1", `on_peer_down #1: missing required key "on_peer_down.command"`},
		{"f.toml:8:1", `on_peer_down #1: missing required key "on_peer_down.peer"`},
	}},
	{"missing rule match", head + job + "[[job.rule]]\naction = \"restart\"\n", []want{{"f.toml:13:1", `job "conf" rule #1: missing required key "job.rule.match"`}}},
	{"missing ami login", head + "[asterisk]\nami = \"127.0.0.1:5038\"\n", []want{
		{"f.toml:8:1", `missing required key "asterisk.secret_file" (needed with asterisk.ami)`},
		{"f.toml:8:1", `missing required key "asterisk.username" (needed with asterisk.ami)`},
	}},
	{"empty required", "[node]\nname = \"\"\nlisten = \":1\"\n", []want{{"f.toml:2:1", "node.name: must not be empty"}}},

	// Duplicates and clashes.
	{"duplicate peer name", head + "[[peer]]\nname = \"b\"\naddress = \"10.0.0.3:7420\"\nid = \"" + id3 + "\"\n",
		[]want{{"f.toml:9:1", `peer "b": peer.name: duplicate peer "b" (first defined at line 5)`}}},
	{"duplicate job name", head + job + job, []want{{"f.toml:14:1", `job "conf": job.name: duplicate job "conf" (first defined at line 9)`}}},
	{"peer named like node", node + "[[peer]]\nname = \"a\"\naddress = \"h:1\"\nid = \"" + id2 + "\"\n",
		[]want{{"f.toml:5:1", `peer "a": peer.name: "a" is the name of this node`}}},
	{"duplicate peer id", head + "[[peer]]\nname = \"c\"\naddress = \"10.0.0.3:7420\"\nid = \"" + id2 + "\"\n",
		[]want{{"f.toml:11:1", `peer "c": peer.id: duplicate id: peer "b" at line 7 has the same id`}}},
	{"duplicate target", head + "[[job]]\nname = \"conf\"\npath = \"/x\"\nsource = \"a\"\ntargets = [\"b\", \"b\"]\n",
		[]want{{"f.toml:12:17", `job.targets: duplicate target "b"`}}},
	{"duplicate table", head + "[[job]]\nname = \"rt\"\ntype = \"postgres\"\ndsn = \"x\"\ntables = [\"t\", \"t\"]\nsource = \"a\"\ntargets = [\"b\"]\n",
		[]want{{"f.toml:12:16", `job "rt": job.tables: duplicate table "t"`}}},

	// Unknown node names.
	{"unknown target", head + "[[job]]\nname = \"conf\"\npath = \"/x\"\nsource = \"a\"\ntargets = [\"b\", \"zz\"]\n",
		[]want{{"f.toml:12:17", `job "conf": job.targets: unknown peer "zz"`}}},
	{"unknown source", head + "[[job]]\nname = \"conf\"\npath = \"/x\"\nsource = \"zz\"\ntargets = [\"a\", \"b\"]\n",
		[]want{{"f.toml:11:1", `job "conf": job.source: unknown peer "zz"`}}},
	{"unknown hook peer", head + "[[on_peer_up]]\npeer = \"zz\"\ncommand = \"true\"\n",
		[]want{{"f.toml:9:1", `on_peer_up #1: on_peer_up.peer: unknown peer "zz"`}}},
	{"hook on own node", head + "[[on_peer_up]]\npeer = \"a\"\ncommand = \"true\"\n",
		[]want{{"f.toml:9:1", `on_peer_up.peer: "a" is this node, not a peer`}}},

	// Relative paths.
	{"relative job path", head + "[[job]]\nname = \"conf\"\npath = \"etc/asterisk\"\nsource = \"a\"\ntargets = [\"b\"]\n",
		[]want{{"f.toml:10:1", `job "conf": job.path: "etc/asterisk" must be an absolute path`}}},
	{"relative data_dir", node + "data_dir = \"var/lib/pbxsync\"\n", []want{{"f.toml:4:1", `node.data_dir: "var/lib/pbxsync" must be an absolute path`}}},
	{"relative secret_file", head + "[asterisk]\nami = \"127.0.0.1:5038\"\nusername = \"u\"\nsecret_file = \"ami.secret\"\n",
		[]want{{"f.toml:11:1", `asterisk.secret_file: "ami.secret" must be an absolute path`}}},
	{"relative dsn_file", head + pg + "dsn_file = \"rt.dsn\"\n", []want{{"f.toml:14:1", `job "rt": job.dsn_file: "rt.dsn" must be an absolute path`}}},
	{"relative asterisk log", head + "[asterisk]\nlog = \"messages\"\n", []want{{"f.toml:9:1", `asterisk.log: "messages" must be an absolute path`}}},

	// Addresses.
	{"listen port out of range", "[node]\nname = \"a\"\nlisten = \"0.0.0.0:99999\"\n",
		[]want{{"f.toml:3:1", `node.listen: "0.0.0.0:99999": port 99999 is out of range 1..65535`}}},
	{"listen port zero", "[node]\nname = \"a\"\nlisten = \":0\"\n", []want{{"f.toml:3:1", `node.listen: ":0": port 0 is out of range`}}},
	{"listen without port", "[node]\nname = \"a\"\nlisten = \"0.0.0.0\"\n", []want{{"f.toml:3:1", `node.listen: "0.0.0.0" is not host:port: missing port in address`}}},
	{"http port name", node + "http = \"localhost:http\"\n", []want{{"f.toml:4:1", `node.http: "localhost:http": port "http" is not a number`}}},
	{"http_cert without http_key", node + "http = \"0.0.0.0:7421\"\nhttp_cert = \"/etc/c.pem\"\n", []want{{"f.toml:5:1", `node.http_cert: http_cert without http_key`}}},
	{"http_key without http_cert", node + "http = \"0.0.0.0:7421\"\nhttp_key = \"/etc/k.pem\"\n", []want{{"f.toml:5:1", `node.http_key: http_key without http_cert`}}},
	{"http_cert without http", node + "http_cert = \"/etc/c.pem\"\nhttp_key = \"/etc/k.pem\"\n", []want{{"f.toml:4:1", `node.http_cert: http_cert without http`}}},
	{"relative http_cert", node + "http = \"0.0.0.0:7421\"\nhttp_cert = \"c.pem\"\nhttp_key = \"/etc/k.pem\"\n", []want{{"f.toml:5:1", `node.http_cert: "c.pem" must be an absolute path`}}},
	{"address without host", node + "[[peer]]\nname = \"b\"\naddress = \":7420\"\nid = \"" + id2 + "\"\n",
		[]want{{"f.toml:6:1", `peer "b": peer.address: ":7420": host must not be empty`}}},
	{"ami without host", head + "[asterisk]\nami = \":5038\"\nusername = \"u\"\nsecret_file = \"/s\"\n", []want{{"f.toml:9:1", `asterisk.ami: ":5038": host must not be empty`}}},

	// Peer IDs.
	{"bad id check character", node + "[[peer]]\nname = \"b\"\naddress = \"h:1\"\nid = \"" + id2[:len(id2)-1] + "6\"\n",
		[]want{{"f.toml:7:1", `peer "b": peer.id: bad id: malformed node ID`}}},
	{"bad id length", node + "[[peer]]\nname = \"b\"\naddress = \"h:1\"\nid = \"ABC\"\n",
		[]want{{"f.toml:7:1", `peer.id: bad id: malformed node ID "ABC": want 56 characters`}}},

	// Enumerations.
	{"bad mode", head + job + "mode = \"sideways\"\n", []want{{"f.toml:13:1", `job "conf": job.mode: "sideways" is not one of push, mesh`}}},
	{"bad type", head + job + "type = \"ftp\"\n", []want{{"f.toml:13:1", `job.type: "ftp" is not one of files, postgres`}}},
	{"bad order", head + job + "order = \"random\"\n", []want{{"f.toml:13:1", `job.order: "random" is not one of parallel, rolling, rolling-sites`}}},
	{"bad log level", node + "log_level = \"loud\"\n", []want{{"f.toml:4:1", `node.log_level: "loud" is not one of debug, info, warn, error`}}},

	// Numbers and durations.
	{"bad memory_limit", node + "memory_limit = \"lots\"\n", []want{{"f.toml:4:1", `node.memory_limit: "lots" is not a size (like "64MiB"`}}},
	{"memory_limit without unit string", node + "memory_limit = 64\n", []want{{"f.toml:4:1", `node.memory_limit: expected a size string like "64MiB" (or 0 or "off"), got the number 64`}}},
	{"memory_limit negative", node + "memory_limit = \"-1MiB\"\n", []want{{"f.toml:4:1", `node.memory_limit: "-1MiB" is not a size`}}},
	{"keep too small", head + job + "keep = 1\n", []want{{"f.toml:13:1", `job.keep: must be at least 2, got 1`}}},
	{"debounce too long", head + job + "debounce = \"11s\"\n", []want{{"f.toml:13:1", `job.debounce: "11s" is longer than the maximum 10s`}}},
	{"debounce negative", head + job + "debounce = \"-1ms\"\n", []want{{"f.toml:13:1", `job.debounce: "-1ms" must not be negative`}}},
	{"bad check_timeout", head + job + "check_timeout = \"soon\"\n", []want{{"f.toml:13:1", `job.check_timeout: "soon" is not a duration`}}},
	{"preserve_suid not a boolean", head + job + "preserve_suid = \"yes\"\n", []want{{"f.toml:13:1", `job.preserve_suid: expected true or false, got string`}}},
	{"bad hook durations", head + "[[on_peer_down]]\npeer = \"b\"\ncommand = \"true\"\ngrace = \"-5s\"\ntimeout = \"1 minute\"\n", []want{
		{"f.toml:11:1", `on_peer_down #1: on_peer_down.grace: "-5s" must not be negative`},
		{"f.toml:12:1", `on_peer_down #1: on_peer_down.timeout: "1 minute" is not a duration`},
	}},

	// Postgres and files keys.
	{"postgres without dsn", head + pg, []want{{"f.toml:8:1", `job "rt": missing required key "job.dsn" or "job.dsn_file"`}}},
	{"postgres with dsn and dsn_file", head + pg + "dsn = \"host=x\"\ndsn_file = \"/etc/pbxsync/rt.dsn\"\n", []want{{"f.toml:15:1", `job.dsn_file: set either dsn or dsn_file, not both`}}},
	{"postgres without tables", head + "[[job]]\nname = \"rt\"\ntype = \"postgres\"\ndsn = \"x\"\nsource = \"a\"\ntargets = [\"b\"]\n", []want{{"f.toml:8:1", `job "rt": missing required key "job.tables"`}}},
	{"postgres empty tables", head + "[[job]]\nname = \"rt\"\ntype = \"postgres\"\ndsn = \"x\"\ntables = []\nsource = \"a\"\ntargets = [\"b\"]\n", []want{{"f.toml:12:1", `job.tables: must name at least one table`}}},
	{"postgres with path", head + pg + "dsn = \"x\"\npath = \"/etc/asterisk\"\n", []want{{"f.toml:15:1", `job.path: only files jobs take path`}}},
	{"files with dsn and tables", head + job + "dsn = \"x\"\ntables = [\"t\"]\n", []want{
		{"f.toml:13:1", `job "conf": job.dsn: only postgres jobs take dsn`},
		{"f.toml:14:1", `job "conf": job.tables: only postgres jobs take tables`},
	}},

	// Push topology.
	{"push empty targets", head + "[[job]]\nname = \"conf\"\npath = \"/x\"\nsource = \"a\"\ntargets = []\n", []want{{"f.toml:12:1", `job.targets: a push job needs at least one target`}}},
	{"push source in targets", head + "[[job]]\nname = \"conf\"\npath = \"/x\"\nsource = \"a\"\ntargets = [\"a\", \"b\"]\n",
		[]want{{"f.toml:12:12", `job.targets: "a" is the source of this push job; it cannot also be a target`}}},
	{"push without this node", head + peerC + "[[job]]\nname = \"conf\"\npath = \"/x\"\nsource = \"b\"\ntargets = [\"c\"]\n",
		[]want{{"f.toml:16:1", `job "conf": this node ("a") takes no part in job "conf"`}}},

	// Mesh topology.
	{"mesh with source", head + "[[job]]\nname = \"pool\"\npath = \"/x\"\nmode = \"mesh\"\nsource = \"a\"\ntargets = [\"a\", \"b\"]\n",
		[]want{{"f.toml:12:1", `job "pool": job.source: a mesh job has no source`}}},
	{"mesh one member", head + "[[job]]\nname = \"pool\"\npath = \"/x\"\nmode = \"mesh\"\ntargets = [\"a\"]\n",
		[]want{{"f.toml:12:1", `job.targets: a mesh job needs at least 2 members`}}},
	{"mesh without this node", head + peerC + "[[job]]\nname = \"pool\"\npath = \"/x\"\nmode = \"mesh\"\ntargets = [\"b\", \"c\"]\n",
		[]want{{"f.toml:16:1", `this node ("a") takes no part in job "pool"`}}},

	// Globs and rules.
	{"bad include", head + job + "include = [\"*.conf\", \"[a\"]\n", []want{{"f.toml:13:22", `job.include: bad pattern "[a": syntax error in pattern`}}},
	{"exclude with the job path", head + job + "exclude = [\"/etc/asterisk/x.conf\"]\n", []want{{"f.toml:13:12", `job.exclude: pattern "/etc/asterisk/x.conf" starts with the job path; patterns are relative to the job root ("/x.conf")`}}},
	{"partial double star", head + job + "exclude = [\"a**b\"]\n", []want{{"f.toml:13:12", `"**" must be a whole path element`}}},
	{"bad match element", head + job + "[[job.rule]]\nmatch = [\"x\", \"[z\"]\naction = \"restart\"\n", []want{{"f.toml:14:15", `job "conf" rule #1: job.rule.match: bad pattern "[z"`}}},
	{"bad match string", head + job + "[[job.rule]]\nmatch = \"a\\\\\"\naction = \"restart\"\n", []want{{"f.toml:14:1", `job.rule.match: bad pattern "a\\"`}}},
	{"rule without action or check", head + job + "[[job.rule]]\nmatch = \"x\"\nwhen = \"no-channels\"\n",
		[]want{{"f.toml:13:1", `job "conf" rule #1: job.rule: needs an "action" or a "check" (or both)`}}},
	{"rule empty match", head + job + "[[job.rule]]\nmatch = []\ncheck = \"true\"\n", []want{{"f.toml:14:1", `job.rule.match: must name at least one pattern`}}},
	{"rule empty action", head + job + "[[job.rule]]\nmatch = \"x\"\naction = \"\"\n", []want{{"f.toml:15:1", `job.rule.action: must not be empty`}}},

	// Job names.
	{"job name charset", head + "[[job]]\nname = \"my job\"\npath = \"/x\"\nsource = \"a\"\ntargets = [\"b\"]\n",
		[]want{{"f.toml:9:1", `job "my job": job.name: "my job" may only contain letters, digits, '_', '.' and '-'`}}},

	// Several problems at once, reported in the order of the file.
	{"multiple errors", "[node]\nname = 7\nlisten = \":99999\"\ncolour = 1\n[[peer]]\nname = \"b\"\naddress = \"h:1\"\nid = \"x\"\n" +
		"[[job]]\nname = \"conf\"\nmode = \"sideways\"\npath = \"rel\"\n  [[job.rule]]\n  match = \"x\"\n  shape = \"square\"\n", []want{
		{"f.toml:2:1", "node.name: expected a string, got integer"},
		{"f.toml:3:1", "node.listen: \":99999\": port 99999 is out of range"},
		{"f.toml:4:1", `unknown key "node.colour"`},
		{"f.toml:8:1", "peer.id: bad id"},
		{"f.toml:11:1", `job.mode: "sideways" is not one of push, mesh`},
		{"f.toml:12:1", `job.path: "rel" must be an absolute path`},
		{"f.toml:13:3", `job.rule: needs an "action" or a "check"`},
		{"f.toml:15:3", `unknown key "job.rule.shape"`},
	}},

	// The locator is not fooled by strings and comments.
	{"strings with # and =", "[node] # [peer]\nname = \"a # b = c\" # name = 1\nlisten = ':1' # = 'x'\ncomment = \"\"\"\nx = 1\n[job]\n\"\"\"\n",
		[]want{{"f.toml:4:1", `unknown key "node.comment"`}}},
	// Inline tables get positions too.
	{"unknown key in inline table", "node = { name = \"a\", listen = \":1\", colour = 1 }\n", []want{{"f.toml:1:37", `unknown key "node.colour"`}}},
	{"inline peer", "peer = [\n  { name = \"b\", address = \"h:1\", id = \"" + id2 + "\" },\n  { name = \"c\", address = \"h\", id = \"" + id3 + "\" },\n]\n" + node,
		[]want{{"f.toml:3:17", `peer "c": peer.address: "h" is not host:port`}}},
}

func TestParseErrors(t *testing.T) {
	for _, tc := range errCases {
		t.Run(tc.name, func(t *testing.T) {
			cfg, err := Parse("f.toml", []byte(tc.text))
			if err == nil {
				t.Fatalf("no error; config %+v", cfg)
			}
			if cfg != nil {
				t.Errorf("config returned with an error")
			}
			var list ErrorList
			if !errors.As(err, &list) {
				t.Fatalf("error is %T, want ErrorList", err)
			}
			lines := strings.Split(err.Error(), "\n")
			if len(lines) != len(tc.want) || len(list) != len(tc.want) {
				t.Fatalf("got %d errors, want %d:\n%v", len(lines), len(tc.want), err)
			}
			for i, w := range tc.want {
				if !strings.HasPrefix(lines[i], w.pos+": ") {
					t.Errorf("error %d: %q does not start with %q", i, lines[i], w.pos+": ")
				}
				if !strings.Contains(lines[i], w.msg) {
					t.Errorf("error %d: %q does not contain %q", i, lines[i], w.msg)
				}
				if list[i].File != "f.toml" {
					t.Errorf("error %d: File = %q", i, list[i].File)
				}
			}
		})
	}
}

func TestErrorsWrap(t *testing.T) {
	_, err := Parse("f.toml", []byte(node+"[[peer]]\nname = \"b\"\naddress = \"h:1\"\nid = \"ABC\"\n"))
	if !errors.Is(err, identity.ErrBadID) {
		t.Errorf("errors.Is(%v, identity.ErrBadID) = false", err)
	}
	var e *Error
	if !errors.As(err, &e) || e.Line != 7 || e.Col != 1 {
		t.Errorf("errors.As *Error = %+v", e)
	}
}

func TestErrorFormat(t *testing.T) {
	for _, tc := range []struct {
		e    *Error
		want string
	}{
		{&Error{File: "x.toml", Line: 3, Col: 7, Msg: "bad"}, "x.toml:3:7: bad"},
		{&Error{File: "x.toml", Line: 3, Msg: "bad"}, "x.toml:3: bad"},
		{&Error{File: "x.toml", Msg: "bad"}, "x.toml: bad"},
	} {
		if got := tc.e.Error(); got != tc.want {
			t.Errorf("Error() = %q, want %q", got, tc.want)
		}
	}
	l := ErrorList{{File: "f", Line: 1, Col: 2, Msg: "one"}, {File: "f", Msg: "two"}}
	if got := l.Error(); got != "f:1:2: one\nf: two" {
		t.Errorf("ErrorList.Error() = %q", got)
	}
	list := ErrorList{{File: "f", Line: 9, Msg: "c"}, {File: "f", Line: 2, Col: 5, Msg: "b"}, {File: "f", Msg: "a"}, {File: "f", Line: 2, Col: 1, Msg: "z"}}
	sortErrors(list)
	if got := list.Error(); got != "f: a\nf:2:1: z\nf:2:5: b\nf:9: c" {
		t.Errorf("sorted = %q", got)
	}
}

func TestSyntaxErrorAfterBOM(t *testing.T) {
	_, err := Parse("f.toml", []byte("\xEF\xBB\xBFa = 1 x\n"))
	if err == nil || !strings.HasPrefix(err.Error(), "f.toml:1:9: syntax error") {
		t.Errorf("err = %v", err)
	}
}

func mustParse(t *testing.T, text string) *Config {
	t.Helper()
	cfg, err := Parse("f.toml", []byte(text))
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	return cfg
}

func TestDefaults(t *testing.T) {
	cfg := mustParse(t, head+job+"[[on_peer_down]]\npeer = \"b\"\ncommand = \"true\"\n[[on_peer_up]]\npeer = \"b\"\ncommand = \"true\"\n")
	want := &Config{
		File: "f.toml",
		Node: Node{Name: "a", Listen: ":7420", DataDir: "/var/lib/pbxsync", LogLevel: "info", MemoryLimit: 48 << 20},
		Peers: []Peer{
			{Name: "b", Address: "10.0.0.2:7420", ID: testID(2)},
		},
		Jobs: []Job{{
			Name: "conf", Type: "files", Path: "/etc/asterisk", Mode: "push", Source: "a", Targets: []string{"b"},
			Order: "parallel", Delta: "auto", Keep: 20, Debounce: 20 * time.Millisecond, CheckTimeout: 30 * time.Second, Line: 8,
		}},
		Asterisk:   Asterisk{Service: "asterisk.service"},
		OnPeerDown: []PeerHook{{Peer: "b", Grace: 5 * time.Second, Command: "true", Timeout: 60 * time.Second}},
		OnPeerUp:   []PeerHook{{Peer: "b", Grace: 0, Command: "true", Timeout: 60 * time.Second}},
	}
	cfg.loc = nil // key positions for ErrorAt, not part of the value
	if !reflect.DeepEqual(cfg, want) {
		t.Errorf("got  %+v\nwant %+v", cfg, want)
	}
}

// An ACT/SBY pair, seen from the standby: pbx-act pushes to pbx-sby.
func TestValidPushPair(t *testing.T) {
	cfg := mustParse(t, `
[node]
name = "pbx-sby"
listen = "10.0.0.2:7420"
data_dir = "/srv/pbxsync/"

[[peer]]
name = "pbx-act"
address = "10.0.0.1:7420"
id = "`+strings.ToLower(id1)+`"

[[job]]
name = "etc-asterisk"
path = "/etc/asterisk/"
include = ["*.conf", "**/*.lua"]
exclude = ["asterisk.conf"]
source = "pbx-act"
targets = ["pbx-sby"]
keep = 5
debounce = "50ms"
check = "asterisk -rx 'core show version'"
check_timeout = "10s"
preserve_suid = true

  [[job.rule]]
  match = "extensions.conf"
  action = "reload pbx_config.so"

  [[job.rule]]
  match = ["pjsip.conf", "pjsip_*.conf"]
  check = "true"

[asterisk]
ami = "localhost:5038"
username = "pbxsync"
secret_file = "/etc/pbxsync/ami.secret"
`)
	if cfg.Node.DataDir != "/srv/pbxsync" {
		t.Errorf("data_dir = %q, want it cleaned", cfg.Node.DataDir)
	}
	if p, ok := cfg.PeerByName("pbx-act"); !ok || p.ID != testID(1) {
		t.Errorf("peer = %+v (lower-case id must parse)", p)
	}
	j, ok := cfg.JobByName("etc-asterisk")
	if !ok {
		t.Fatal("job missing")
	}
	if j.Path != "/etc/asterisk" || j.Keep != 5 || j.Debounce != 50*time.Millisecond || j.CheckTimeout != 10*time.Second || j.Line != 12 || !j.PreserveSUID {
		t.Errorf("job = %+v", j)
	}
	if !reflect.DeepEqual(j.Members(), []string{"pbx-act", "pbx-sby"}) {
		t.Errorf("members = %v", j.Members())
	}
	wantRules := []Rule{
		{Match: []string{"extensions.conf"}, Action: "reload pbx_config.so", Line: 25},
		{Match: []string{"pjsip.conf", "pjsip_*.conf"}, Check: "true", Line: 29},
	}
	if !reflect.DeepEqual(j.Rules, wantRules) {
		t.Errorf("rules = %+v", j.Rules)
	}
	if cfg.Asterisk.AMI != "localhost:5038" || cfg.Asterisk.Log != "" {
		t.Errorf("asterisk = %+v", cfg.Asterisk)
	}
}

// A pool of three where any server serves any phone.
func TestValidPool(t *testing.T) {
	cfg := mustParse(t, `
[node]
name = "p1"
listen = ":7420"
http = "127.0.0.1:9180"
log_level = "debug"

[[peer]]
name = "p2"
address = "[fd00::2]:7420"
id = "`+id2+`"

[[peer]]
name = "p3"
address = "p3.example.net:7420"
id = "`+id3+`"

[[job]]
name = "conf"
path = "/etc/asterisk"
mode = "mesh"
targets = ["p1", "p2", "p3"]

[[job]]
name = "sounds"
path = "/var/lib/asterisk/sounds/custom"
source = "p2"
targets = ["p1", "p3"]
order = "rolling"

[[on_peer_down]]
peer = "p2"
grace = "2s"
command = "systemctl start takeover"
timeout = "5m"
`)
	if len(cfg.Peers) != 2 || len(cfg.Jobs) != 2 || cfg.Node.LogLevel != "debug" || cfg.Node.HTTP != "127.0.0.1:9180" {
		t.Fatalf("config = %+v", cfg)
	}
	if j := cfg.Jobs[0]; j.Mode != ModeMesh || j.Source != "" || len(j.Members()) != 3 {
		t.Errorf("mesh job = %+v", j)
	}
	if j := cfg.Jobs[1]; j.Order != OrderRolling || j.Source != "p2" {
		t.Errorf("push job = %+v", j)
	}
	if h := cfg.OnPeerDown[0]; h.Grace != 2*time.Second || h.Timeout != 5*time.Minute {
		t.Errorf("hook = %+v", h)
	}
}

func TestValidPostgres(t *testing.T) {
	cfg := mustParse(t, head+`[[job]]
name = "realtime"
type = "postgres"
dsn = "postgres://pbxsync@localhost/asterisk"
tables = ["ps_endpoints", "ps_aors", "ps_auths"]
source = "a"
targets = ["b"]
  [[job.rule]]
  match = "ps_*"
  check = "true"

[[job]]
name = "voicemail"
type = "postgres"
dsn_file = "/etc/pbxsync//vm.dsn"
tables = ["voicemail"]
source = "b"
targets = ["a"]
`)
	j := cfg.Jobs[0]
	if j.Type != TypePostgres || j.DSN == "" || len(j.Tables) != 3 || j.Path != "" {
		t.Errorf("job = %+v", j)
	}
	if j := cfg.Jobs[1]; j.DSNFile != "/etc/pbxsync/vm.dsn" || j.DSN != "" {
		t.Errorf("job = %+v", j)
	}
}

func TestExampleParses(t *testing.T) {
	ex := Example()
	cfg, err := Parse("example.toml", []byte(ex))
	if err != nil {
		t.Fatalf("Example does not parse:\n%v", err)
	}
	if len(cfg.Peers) != 2 || len(cfg.Jobs) != 3 || len(cfg.OnPeerDown) != 1 || len(cfg.OnPeerUp) != 1 {
		t.Errorf("example config = %+v", cfg)
	}
	if cfg.Peers[0].ID != testID(2) || cfg.Peers[1].ID != testID(3) {
		t.Errorf("example IDs changed: %v %v", cfg.Peers[0].ID, cfg.Peers[1].ID)
	}
	// Every key is shown.
	for _, key := range []string{
		"name", "listen", "data_dir", "http", "http_cert", "http_key", "log_level",
		"address", "id", "relay",
		"type", "path", "include", "exclude", "mode", "source", "targets", "order", "keep", "debounce", "check", "check_timeout", "preserve_suid", "dsn_file", "tables",
		"match", "action", "when",
		"ami", "username", "secret_file", "log",
		"peer", "grace", "command", "timeout",
	} {
		if !strings.Contains(ex, "\n"+key+" = ") && !strings.Contains(ex, "  "+key+" = ") {
			t.Errorf("example does not show %q", key)
		}
	}
	if !strings.Contains(ex, "dsn = ") {
		t.Error("example does not mention dsn")
	}
}

func TestLoad(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "pbxsync.toml")
	if err := os.WriteFile(path, []byte(head+job), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.File != path {
		t.Errorf("File = %q, want %q", cfg.File, path)
	}

	missing := filepath.Join(dir, "nope.toml")
	_, err = Load(missing)
	if !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("errors.Is(%v, fs.ErrNotExist) = false", err)
	}
	if want := missing + ": cannot read config: no such file or directory"; err == nil || err.Error() != want {
		t.Errorf("err = %v, want %s", err, want)
	}

	bad := filepath.Join(dir, "bad.toml")
	if err := os.WriteFile(bad, []byte(head+"colour = 1\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(bad); err == nil || err.Error() != bad+`:8:1: peer "b": unknown key "peer.colour"` {
		t.Errorf("err = %v", err)
	}
}

func TestCheckGlob(t *testing.T) {
	for _, ok := range []string{"*", "*.conf", "**", "**/*.conf", "a/**/b", "sounds/[a-z]*.wav", `\*`, "a/b/", "/extensions.conf"} {
		if err := checkGlob(ok); err != nil {
			t.Errorf("checkGlob(%q) = %v", ok, err)
		}
	}
	for _, bad := range []string{"", "/", "[", "a/[b", "a**", "**b/c", "a/../b", `a\`} {
		if err := checkGlob(bad); err == nil {
			t.Errorf("checkGlob(%q) = nil", bad)
		}
	}
}

func TestCheckHostPort(t *testing.T) {
	for _, tc := range []struct {
		v         string
		emptyHost bool
		ok        bool
	}{
		{":7420", true, true},
		{":7420", false, false},
		{"0.0.0.0:1", false, true},
		{"[::1]:65535", false, true},
		{"h:65536", false, false},
		{"h:+80", false, false},
		{"h:", false, false},
		{"h", false, false},
		{"a b:1", false, false},
		{"::1:80", false, false},
	} {
		if err := checkHostPort(tc.v, tc.emptyHost); (err == nil) != tc.ok {
			t.Errorf("checkHostPort(%q, %v) = %v", tc.v, tc.emptyHost, err)
		}
	}
}

// A push target pins only the source; the other targets may be strangers
// to it. The source must pin every target.
func TestPushTargetNeedNotPinOtherTargets(t *testing.T) {
	id := identity.IDFromPublicKey(make([]byte, 32)).String()
	target := "[node]\nname = \"t1\"\nlisten = \":7420\"\n\n[[peer]]\nname = \"src\"\naddress = \"10.0.0.1:7420\"\nid = \"" + id + "\"\n\n" +
		"[[job]]\nname = \"conf\"\npath = \"/etc/asterisk\"\nsource = \"src\"\ntargets = [\"t1\", \"t2\", \"t3\"]\n"
	if _, err := Parse("t1.toml", []byte(target)); err != nil {
		t.Fatalf("target config refused: %v", err)
	}
	source := strings.Replace(strings.Replace(target, `name = "t1"`, `name = "src0"`, 1), `source = "src"`, `source = "src0"`, 1)
	source = strings.Replace(source, `name = "src"`, `name = "t1"`, 1)
	_, err := Parse("src.toml", []byte(source))
	if err == nil || !strings.Contains(err.Error(), `unknown peer "t2"`) || !strings.Contains(err.Error(), `unknown peer "t3"`) {
		t.Fatalf("source config with unpinned targets: %v", err)
	}
}

// TestUnknownKeyGuess: a guess only for a near miss, never for a key that
// is far from every known one.
func TestUnknownKeyGuess(t *testing.T) {
	for _, c := range []struct{ key, want string }{
		{"lisen", "listen"}, {"lsiten", "listen"}, {"data-dir", "data_dir"}, {"nme", "name"},
		{"colour", ""}, {"x", ""}, {"listen", ""},
	} {
		if got := suggest(c.key, []string{"name", "listen", "data_dir", "http", "log_level"}); got != c.want {
			t.Errorf("suggest(%q) = %q, want %q", c.key, got, c.want)
		}
	}
	_, err := Parse("f.toml", []byte(head+job+"colour = \"red\"\n"))
	if err == nil || strings.Contains(err.Error(), "did you mean") {
		t.Fatalf("far key: %v; want an error without a guess", err)
	}
}

// TestExampleNamesTheMemoryDefault: the example configuration's comment
// on memory_limit names the default the loader applies (it said 64MiB
// after the default became 52 MiB).
func TestExampleNamesTheMemoryDefault(t *testing.T) {
	ex := Example()
	i := strings.Index(ex, "memory_limit =")
	if i < 0 {
		t.Fatal("the example has no memory_limit")
	}
	rest := ex[i:]
	j := strings.Index(rest, "(default ")
	if j < 0 {
		t.Fatal("the example's memory_limit names no default")
	}
	want := fmt.Sprintf("(default %dMiB)", DefaultMemoryLimit>>20)
	if got := rest[j : j+len(want)]; got != want {
		t.Errorf("the example says %q, the default is %s", got, want)
	}
}
