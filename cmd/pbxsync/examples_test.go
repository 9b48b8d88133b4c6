package main

import (
	"bytes"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"testing"

	"pbxsync/internal/config"
	"pbxsync/rules"
)

// examplesDir is the repository's examples/ folder, seen from this package.
const examplesDir = "../../examples"

// exampleConfigs returns every examples/**/*.toml, sorted.
func exampleConfigs(t *testing.T) []string {
	t.Helper()
	var files []string
	err := filepath.WalkDir(examplesDir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() && strings.HasSuffix(d.Name(), ".toml") {
			files = append(files, p)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(files)
	return files
}

// TestExamplesLoad loads every examples/**/*.toml with config.Load (each is
// one host's complete configuration and must be valid on its own), runs
// `pbxsync check` on it (which finds nothing wrong but the host's own
// secret files missing here), and compiles every job's rules.
func TestExamplesLoad(t *testing.T) {
	files := exampleConfigs(t)
	// The examples the README promises; a lost file must fail the test, not
	// shrink it.
	want := []string{
		"act-sby/pbx-act.toml", "act-sby/pbx-sby.toml",
		"pool-3/pbx1.toml", "pool-3/pbx2.toml", "pool-3/pbx3.toml",
		"two-dc/dc1-pbx1.toml", "two-dc/dc1-pbx2.toml", "two-dc/dc2-pbx1.toml", "two-dc/dc2-pbx2.toml",
		"postgres/pbx1.toml", "postgres/pbx2.toml",
	}
	have := map[string]bool{}
	for _, f := range files {
		rel, _ := filepath.Rel(examplesDir, f)
		have[filepath.ToSlash(rel)] = true
	}
	for _, w := range want {
		if !have[w] {
			t.Errorf("examples/%s is missing", w)
		}
	}

	for _, f := range files {
		t.Run(strings.TrimPrefix(filepath.ToSlash(f), examplesDir+"/"), func(t *testing.T) {
			cfg, err := config.Load(f)
			if err != nil {
				t.Fatalf("config.Load:\n%v", err)
			}
			for _, j := range cfg.Jobs {
				if _, err := rules.Compile(j.Rules, true); err != nil {
					t.Errorf("job %q: rules: %v", j.Name, err)
				}
			}
			// On this machine the host's secret and DSN files do not exist:
			// check refuses the file for them (as run would), and for
			// nothing else. TestCheckAndRunAgree and TestExamplesRun run
			// check on each example adapted to this machine.
			var out, errb bytes.Buffer
			if code := run([]string{"check", "--config", f}, &out, &errb); code != 0 {
				for _, line := range strings.Split(strings.TrimSpace(errb.String()), "\n") {
					if !strings.Contains(line, "asterisk.secret_file: AMI secret file: stat /etc/pbxsync/") && !strings.Contains(line, "read dsn_file: open /etc/pbxsync/") {
						t.Errorf("pbxsync check --config %s: %s", f, line)
					}
				}
			}
			data, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			// Every example with peers tells the admin where real IDs come from.
			if len(cfg.Peers) > 0 && !bytes.Contains(data, []byte("pbxsync id")) {
				t.Errorf("no comment telling the admin to replace the peer IDs with the output of `pbxsync id`")
			}
			for _, p := range []string{cfg.Node.DataDir, cfg.Asterisk.SecretFile} {
				if p != "" && !filepath.IsAbs(p) {
					t.Errorf("path %q is not absolute", p)
				}
			}
		})
	}
}

// TestExamplesConsistent checks each example directory as one farm: the
// files of the hosts must agree with each other, as the README tells the
// admin they must.
//   - Every [[peer]] is the node of one file in the directory, at the port
//     that node listens on; a peer has the same address and ID in every
//     file, and no two peers share an ID.
//   - A job with the same name is the same job (apart from its line
//     numbers) in every file that has it, and every node it names has a
//     file that has the job.
func TestExamplesConsistent(t *testing.T) {
	byDir := map[string][]*config.Config{}
	for _, f := range exampleConfigs(t) {
		cfg, err := config.Load(f)
		if err != nil {
			continue // TestExamplesLoad reports it
		}
		byDir[filepath.Dir(f)] = append(byDir[filepath.Dir(f)], cfg)
	}
	for dir, cfgs := range byDir {
		t.Run(filepath.Base(dir), func(t *testing.T) {
			nodes := map[string]*config.Config{}
			for _, c := range cfgs {
				if other, dup := nodes[c.Node.Name]; dup {
					t.Errorf("%s and %s are both node %q", other.File, c.File, c.Node.Name)
				}
				nodes[c.Node.Name] = c
			}
			peers := map[string]config.Peer{}
			peerFile := map[string]string{}
			idOwner := map[string]string{}
			jobs := map[string]config.Job{}
			jobFile := map[string]string{}
			jobHosts := map[string]map[string]bool{}
			for _, c := range cfgs {
				for _, p := range c.Peers {
					n, ok := nodes[p.Name]
					if !ok {
						t.Errorf("%s: peer %q has no file in %s", c.File, p.Name, dir)
					} else if _, lport, _ := net.SplitHostPort(n.Node.Listen); !strings.HasSuffix(p.Address, ":"+lport) {
						t.Errorf("%s: peer %q at %s, but %s listens on port %s", c.File, p.Name, p.Address, n.File, lport)
					}
					if first, seen := peers[p.Name]; seen && (first.Address != p.Address || first.ID != p.ID) {
						t.Errorf("peer %q differs: %s has %s %s, %s has %s %s",
							p.Name, peerFile[p.Name], first.Address, first.ID, c.File, p.Address, p.ID)
					} else if !seen {
						peers[p.Name], peerFile[p.Name] = p, c.File
					}
					if owner, ok := idOwner[p.ID.String()]; ok && owner != p.Name {
						t.Errorf("%s: peers %q and %q share the ID %s", c.File, owner, p.Name, p.ID)
					}
					idOwner[p.ID.String()] = p.Name
				}
				for _, j := range c.Jobs {
					if jobHosts[j.Name] == nil {
						jobHosts[j.Name] = map[string]bool{}
					}
					jobHosts[j.Name][c.Node.Name] = true
					norm := normalizeJob(j)
					if first, seen := jobs[j.Name]; seen && !reflect.DeepEqual(first, norm) {
						t.Errorf("job %q differs between %s and %s:\n%+v\n%+v", j.Name, jobFile[j.Name], c.File, first, norm)
					} else if !seen {
						jobs[j.Name], jobFile[j.Name] = norm, c.File
					}
				}
			}
			for name, j := range jobs {
				for _, m := range j.Members() {
					if !jobHosts[name][m] {
						t.Errorf("job %q names node %q, but no file in %s is %q with that job", name, m, dir, m)
					}
				}
			}
		})
	}
}

// normalizeJob drops what may differ between two copies of the same job:
// the line numbers.
func normalizeJob(j config.Job) config.Job {
	j.Line = 0
	j.Rules = append([]config.Rule(nil), j.Rules...)
	for i := range j.Rules {
		j.Rules[i].Line = 0
	}
	return j
}
