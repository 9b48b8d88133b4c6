package main

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"pbxsync/internal/config"
	"pbxsync/internal/identity"
)

// startupCase is one configuration for TestCheckAndRunAgree: write makes
// it (in dir) and returns its path.
type startupCase struct {
	name  string
	write func(t *testing.T, dir string) string
	ok    bool   // check accepts it and run starts
	msg   string // when refused: in the first line of both, after FILE:LINE:COL
}

// baseConfig is a valid one-job configuration in dir: node a pushes conf to b.
func baseConfig(t *testing.T, dir string) string {
	t.Helper()
	peer := identity.IDFromPublicKey(make([]byte, 32))
	tree := filepath.Join(dir, "tree")
	if err := os.MkdirAll(tree, 0o755); err != nil {
		t.Fatal(err)
	}
	return fmt.Sprintf("[node]\nname = \"a\"\nlisten = \"127.0.0.1:%d\"\ndata_dir = %q\n\n[[peer]]\nname = \"b\"\naddress = \"127.0.0.1:9\"\nid = %q\n\n[[job]]\nname = \"conf\"\npath = %q\nsource = \"a\"\ntargets = [\"b\"]\n",
		freeUDPPort(t), filepath.Join(dir, "data"), peer, tree)
}

func writeText(t *testing.T, dir, text string) string {
	t.Helper()
	p := filepath.Join(dir, "pbxsync.toml")
	if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// withBase returns a case that appends extra to baseConfig.
func withBase(extra func(dir string) string) func(t *testing.T, dir string) string {
	return func(t *testing.T, dir string) string {
		return writeText(t, dir, baseConfig(t, dir)+extra(dir))
	}
}

// pgJob is a postgres job pushed from a to b with the given dsn line.
func pgJob(line string) string {
	return "\n[[job]]\nname = \"realtime\"\ntype = \"postgres\"\n" + line + "\ntables = [\"ps_endpoints\"]\nsource = \"a\"\ntargets = [\"b\"]\n"
}

// amiTable is an [asterisk] table with AMI on a closed port.
func amiTable(secretFile string) string {
	return fmt.Sprintf("\n[asterisk]\nami = \"127.0.0.1:9\"\nusername = \"pbxsync\"\nsecret_file = %q\n", secretFile)
}

func startupCases() []startupCase {
	return []startupCase{
		{name: "valid", write: withBase(func(string) string { return "" }), ok: true},
		{name: "unknown key", write: withBase(func(string) string { return "colour = \"red\"\n" }), msg: `unknown key "job.colour"`},
		{name: "misspelt key", write: func(t *testing.T, dir string) string {
			return writeText(t, dir, strings.Replace(baseConfig(t, dir), "[node]\n", "[node]\nlog_levl = \"debug\"\n", 1))
		}, msg: `unknown key "node.log_levl" (did you mean "node.log_level"?)`},
		{name: "rule that does not compile", write: withBase(func(string) string {
			return "\n  [[job.rule]]\n  match = \"*.conf\"\n  action = \"relaod pbx_config.so\"\n"
		}), msg: `job "conf": rule[0]: action "relaod pbx_config.so": unknown verb "relaod"`},
		{name: "mesh", write: func(t *testing.T, dir string) string {
			text := strings.Replace(baseConfig(t, dir), "source = \"a\"\ntargets = [\"b\"]", "mode = \"mesh\"\ntargets = [\"a\", \"b\"]", 1)
			return writeText(t, dir, text)
		}, ok: true},
		{name: "mesh conflict names no member", write: func(t *testing.T, dir string) string {
			text := strings.Replace(baseConfig(t, dir), "source = \"a\"\ntargets = [\"b\"]", "mode = \"mesh\"\ntargets = [\"a\", \"b\"]\nconflict = \"prefer:z\"", 1)
			return writeText(t, dir, text)
		}, msg: `job.conflict: "prefer:z": "z" is not a member of this job`},
		{name: "mesh conflict policy unknown", write: func(t *testing.T, dir string) string {
			text := strings.Replace(baseConfig(t, dir), "source = \"a\"\ntargets = [\"b\"]", "mode = \"mesh\"\ntargets = [\"a\", \"b\"]\nconflict = \"oldest\"", 1)
			return writeText(t, dir, text)
		}, msg: `want "newest" or "prefer:NODE"`},
		{name: "rolling mesh", write: func(t *testing.T, dir string) string {
			text := strings.Replace(baseConfig(t, dir), "source = \"a\"\ntargets = [\"b\"]", "mode = \"mesh\"\ntargets = [\"a\", \"b\"]\norder = \"rolling\"", 1)
			return writeText(t, dir, text)
		}, msg: `job.order: "rolling" is not built for mesh jobs yet`},
		{name: "rolling-sites mesh", write: func(t *testing.T, dir string) string {
			text := strings.Replace(baseConfig(t, dir), "source = \"a\"\ntargets = [\"b\"]", "mode = \"mesh\"\ntargets = [\"a\", \"b\"]\norder = \"rolling-sites\"", 1)
			return writeText(t, dir, text)
		}, msg: `job.order: "rolling-sites" is not built for mesh jobs yet`},
		{name: "templates in a mesh", write: func(t *testing.T, dir string) string {
			text := strings.Replace(baseConfig(t, dir), "source = \"a\"\ntargets = [\"b\"]", "mode = \"mesh\"\ntargets = [\"a\", \"b\"]\ntemplates = [\"*.tmpl\"]", 1)
			return writeText(t, dir, text)
		}, msg: `job.templates: templates are not built for mesh jobs yet`},
		{name: "window in a mesh", write: func(t *testing.T, dir string) string {
			text := strings.Replace(baseConfig(t, dir), "source = \"a\"\ntargets = [\"b\"]", "mode = \"mesh\"\ntargets = [\"a\", \"b\"]\nwindow = \"02:00-04:00\"", 1)
			return writeText(t, dir, text)
		}, msg: `job.window: sync windows are not built for mesh jobs yet`},
		{name: "conflict on a push job", write: withBase(func(string) string { return "conflict = \"newest\"\n" }),
			msg: `only mesh jobs take conflict`},
		{name: "ami secret_file missing", write: withBase(func(dir string) string { return amiTable(filepath.Join(dir, "missing.secret")) }),
			msg: "asterisk.secret_file: AMI secret file: stat "},
		{name: "ami secret_file empty", write: withBase(func(dir string) string {
			p := filepath.Join(dir, "empty.secret")
			os.WriteFile(p, []byte("\n"), 0o600)
			return amiTable(p)
		}), msg: "is empty"},
		{name: "ami secret_file unreadable", write: withBase(func(dir string) string {
			p := filepath.Join(dir, "locked.secret")
			os.WriteFile(p, []byte(exampleSecret+"\n"), 0o600)
			os.Chmod(dir, 0o700)
			if os.Getuid() == 0 {
				// root reads any file: make it a directory instead, which
				// nobody can use as a secret
				os.Remove(p)
				os.Mkdir(p, 0o700)
			}
			return amiTable(p)
		}), msg: "asterisk.secret_file: AMI secret file "},
		{name: "ami secret_file present", write: withBase(func(dir string) string {
			p := filepath.Join(dir, "ami.secret")
			os.WriteFile(p, []byte(exampleSecret+"\n"), 0o600)
			return amiTable(p)
		}), ok: true},
		{name: "http_cert that does not load", write: func(t *testing.T, dir string) string {
			crt, key := filepath.Join(dir, "https.crt"), filepath.Join(dir, "https.key")
			os.WriteFile(crt, []byte("not a certificate\n"), 0o644)
			os.WriteFile(key, []byte("not a key\n"), 0o600)
			return writeText(t, dir, strings.Replace(baseConfig(t, dir), "[node]\n", fmt.Sprintf("[node]\nhttp = \"127.0.0.1:%d\"\nhttp_cert = %q\nhttp_key = %q\n", freeUDPPort(t), crt, key), 1))
		}, msg: "node.http_cert: "},
		{name: "dsn that does not parse", write: withBase(func(string) string { return pgJob(`dsn = "host=127.0.0.1 port=seventy"`) }),
			msg: `job "realtime": the DSN does not parse (not shown: it may hold a password)`},
		{name: "dsn_file missing", write: withBase(func(dir string) string { return pgJob(fmt.Sprintf("dsn_file = %q", filepath.Join(dir, "rt.dsn"))) }),
			msg: `job "realtime": read dsn_file: open `},
		{name: "dsn_file that does not parse", write: withBase(func(dir string) string {
			p := filepath.Join(dir, "rt.dsn")
			os.WriteFile(p, []byte("postgres://u:pw@127.0.0.1:notaport/db\n"), 0o600)
			return pgJob(fmt.Sprintf("dsn_file = %q", p))
		}), msg: "the DSN does not parse"},
		{name: "dsn of a database that is down", write: withBase(func(string) string {
			return pgJob(`dsn = "postgres://u@127.0.0.1:9/db?connect_timeout=1"`)
		}), ok: true}, // only starting shows that: the job reports it and retries
		{name: "data_dir below a file", write: func(t *testing.T, dir string) string {
			f := filepath.Join(dir, "file")
			os.WriteFile(f, nil, 0o644)
			return writeText(t, dir, strings.Replace(baseConfig(t, dir), filepath.Join(dir, "data"), filepath.Join(f, "data"), 1))
		}, msg: "node.data_dir: "},
		{name: "peer pinned with this node's own id", write: func(t *testing.T, dir string) string {
			id, err := identity.LoadOrCreate(filepath.Join(dir, "data"))
			if err != nil {
				t.Fatal(err)
			}
			text := baseConfig(t, dir)
			text = strings.Replace(text, identity.IDFromPublicKey(make([]byte, 32)).String(), id.ID.String(), 1)
			return writeText(t, dir, text)
		}, msg: `is this node's own ID`},
		{name: "check --example", write: func(t *testing.T, dir string) string {
			orig := writeText(t, dir, config.Example())
			cfg, err := config.Load(orig)
			if err != nil {
				t.Fatal(err)
			}
			return writeText(t, dir, adaptConfig(t, config.Example(), cfg, adaptEnv{root: dir, listen: fmt.Sprintf("127.0.0.1:%d", freeUDPPort(t)), http: freeTCPAddr(t), ami: "127.0.0.1:9"}))
		}, ok: true},
	}
}

// TestCheckAndRunAgree: for every configuration of the table and every
// example (adapted to this machine), `pbxsync check` accepts it exactly
// when `pbxsync run` starts with it, and when both refuse they print the
// same first line, FILE:LINE:COL: message.
func TestCheckAndRunAgree(t *testing.T) {
	t.Parallel()
	cases := startupCases()
	for _, dir := range []string{"act-sby", "pool-3", "two-dc", "postgres"} {
		files, _ := filepath.Glob(filepath.Join(examplesDir, dir, "*.toml"))
		cases = append(cases, startupCase{name: "examples/" + dir, ok: true, write: func(t *testing.T, _ string) string {
			farm := adaptFarm(t, files, nil)
			return farm[mustLoad(t, files[0]).Node.Name].cfgPath
		}})
	}
	pos := regexp.MustCompile(`^(/[^:]+):(\d+):(\d+): `)
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			path := c.write(t, t.TempDir())
			var out, checkErr bytes.Buffer
			checkOK := cmdCheck(t.Context(), []string{"--config", path}, &out, &checkErr) == 0
			runLog := &syncBuffer{}
			started, stop := startRun(t, path, runLog)
			stop()
			if checkOK != started {
				t.Fatalf("check accepts: %v, run starts: %v\ncheck: %s\nrun: %s", checkOK, started, checkErr.String(), runLog.String())
			}
			if checkOK != c.ok {
				t.Fatalf("both accept: %v, want %v\ncheck: %s", checkOK, c.ok, checkErr.String())
			}
			if c.ok {
				return
			}
			first := strings.SplitN(checkErr.String(), "\n", 2)[0]
			if runFirst := strings.SplitN(runLog.String(), "\n", 2)[0]; runFirst != first {
				t.Errorf("check and run refuse with different messages:\ncheck: %s\nrun:   %s", first, runFirst)
			}
			m := pos.FindStringSubmatch(first)
			if m == nil || m[1] != path {
				t.Errorf("refusal %q is not %s:LINE:COL: message", first, path)
			}
			if !strings.Contains(first, c.msg) {
				t.Errorf("refusal %q lacks %q", first, c.msg)
			}
		})
	}
}

func mustLoad(t *testing.T, path string) *config.Config {
	t.Helper()
	cfg, err := config.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}
