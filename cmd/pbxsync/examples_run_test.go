package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"pbxsync/internal/config"
	"pbxsync/internal/control"
	"pbxsync/internal/pgtest"
	"pbxsync/internal/shell"
	"pbxsync/internal/testlog"
	"pbxsync/internal/testwait"
)

// fakeAsterisk puts an `asterisk` command on PATH that answers every
// `asterisk -rx CMD` the examples' checks run with what a healthy
// Asterisk prints for them (an extension that dials, the carrier
// endpoint), so the examples run with their checks unchanged. It runs the
// command once as a check would, and fails the test at once, saying what
// the shell found, when that does not work.
func fakeAsterisk(t *testing.T) {
	t.Helper()
	bin := t.TempDir()
	script := "#!/bin/sh\n# test double of asterisk -rx\necho \"  '112' => 1. Dial(PJSIP/112,30)\"\necho \" Endpoint:  carrier/carrier   Not in use\"\n"
	if err := os.WriteFile(filepath.Join(bin, "asterisk"), []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PATH", bin+string(os.PathListSeparator)+os.Getenv("PATH"))
	works := func() error {
		if _, err := shell.Run(context.Background(), bin, "asterisk -rx 'core show uptime' | grep -q Dial", nil, 0); err != nil {
			found, _ := shell.Run(context.Background(), bin, "command -v asterisk; ls -la "+bin+"; id; umask", nil, 0)
			return fmt.Errorf("%w\nPATH=%s\n%s", err, os.Getenv("PATH"), found.Output)
		}
		return nil
	}
	if err := works(); err != nil {
		t.Fatalf("the fake asterisk does not run as a check would run it: %v", err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			if err := works(); err != nil {
				t.Logf("at the end the fake asterisk no longer ran: %v", err)
			}
		}
	})
}

// exampleFile is what a test writes into a job's tree: a file that the
// job's rules and checks accept.
func exampleFile(jobPath string, n int) (rel, content string) {
	switch {
	case strings.HasSuffix(jobPath, "/etc/asterisk"):
		return "extensions.conf", fmt.Sprintf("[from-internal]\nexten => 112,1,Dial(PJSIP/112,30)\n; change %d\n", n)
	case strings.HasSuffix(jobPath, "/users"):
		return "2001.conf", fmt.Sprintf("[2001]\ntype=endpoint\ncontext=from-internal\n; change %d\n", n)
	case strings.Contains(jobPath, "agi-bin"):
		return "hello.sh", fmt.Sprintf("#!/bin/sh\necho change %d\n", n)
	default:
		return "welcome.gsm", strings.Repeat(fmt.Sprintf("sound %d ", n), 100)
	}
}

// TestExamplesRun starts every example farm (examples/*/ with its *.toml)
// on this machine, adapted by adaptFarm, with `pbxsync run`, and makes one
// change in each of its jobs on the job's source: every target gets it.
// The examples cannot rot: a key the agent refuses, a job it cannot run, a
// rule or check that fails on the change fails this test.
func TestExamplesRun(t *testing.T) {
	dirs, err := filepath.Glob(filepath.Join(examplesDir, "*"))
	if err != nil {
		t.Fatal(err)
	}
	ran := 0
	for _, dir := range dirs {
		files, _ := filepath.Glob(filepath.Join(dir, "*.toml"))
		if len(files) == 0 {
			continue // systemd/
		}
		ran++
		t.Run(filepath.Base(dir), func(t *testing.T) { runExampleFarm(t, files) })
	}
	if ran < 4 {
		t.Fatalf("ran %d example farms, want the 4 of examples/README.md", ran)
	}
}

func runExampleFarm(t *testing.T, files []string) {
	fakeAsterisk(t) // each farm its own: nothing one farm did reaches the next
	var pg *pgtest.Server
	dsns := map[string]string{}
	for _, f := range files {
		for _, j := range mustLoad(t, f).Jobs {
			if j.Type == config.TypePostgres && pg == nil {
				pg = pgtest.Start(t)
			}
		}
	}
	var dsn func(string) string
	if pg != nil {
		dsn = func(node string) string {
			d := pg.NewDB(t)
			c := pgtest.Connect(t, d)
			for _, table := range []string{"ps_endpoints", "ps_aors", "ps_auths"} {
				if _, err := c.Exec(context.Background(), "CREATE TABLE "+table+" (id varchar(40) PRIMARY KEY, context varchar(40))"); err != nil {
					t.Fatal(err)
				}
			}
			dsns[node] = d
			return d
		}
	}
	farm := adaptFarm(t, files, dsn)

	// Jobs by name (each appears in the file of every member).
	type exJob struct {
		job    config.Job
		source *exNode
	}
	jobs := map[string]exJob{}
	for _, n := range farm {
		for _, j := range n.orig.Jobs {
			src := j.Source
			if j.Mode == config.ModeMesh {
				src = j.Targets[0] // any member may change it: the first does
			}
			jobs[j.Name] = exJob{job: j, source: farm[src]}
		}
	}
	seed := func(j exJob, k int) {
		if j.job.Type != config.TypeFiles {
			return
		}
		rel, content := exampleFile(j.job.Path, k)
		if err := os.WriteFile(filepath.Join(j.source.path(j.job.Path), rel), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	arrived := func(what string, j exJob, k int) {
		t.Helper()
		for _, target := range j.job.Targets {
			n := farm[target]
			testwait.Eventually(t, fmt.Sprintf("%s: job %s on %s", what, j.job.Name, target), func() error {
				if j.job.Type == config.TypePostgres {
					var got int
					c := pgtest.Connect(t, dsns[target])
					defer c.Close(context.Background())
					if err := c.QueryRow(context.Background(), "SELECT count(*) FROM ps_endpoints WHERE context = $1", fmt.Sprintf("change-%d", k)).Scan(&got); err != nil {
						return err
					}
					if got != 1 {
						return fmt.Errorf("%d rows of change %d", got, k)
					}
					return nil
				}
				rel, want := exampleFile(j.job.Path, k)
				got, err := os.ReadFile(filepath.Join(n.path(j.job.Path), rel))
				if err != nil {
					return err
				}
				if !bytes.Equal(got, []byte(want)) {
					return fmt.Errorf("%s holds %q", rel, got)
				}
				return nil
			})
		}
	}
	for _, j := range jobs {
		seed(j, 0)
	}
	for _, n := range farm {
		started, stop := startRun(t, n.cfgPath, n.log)
		if !started {
			t.Fatalf("%s: pbxsync run refused its adapted example:\n%s", n.name, n.log.String())
		}
		n.stop = stop
		t.Cleanup(func() {
			stop()
			if t.Failed() {
				testlog.Dump(t, n.name, n.log.String())
			}
		})
	}
	for _, j := range jobs {
		if j.job.Type == config.TypePostgres {
			c := pgtest.Connect(t, dsns[j.source.name])
			if _, err := c.Exec(context.Background(), "INSERT INTO ps_endpoints VALUES ('100', 'change-1')"); err != nil {
				t.Fatal(err)
			}
		} else {
			arrived("initial sync", j, 0)
			seed(j, 1)
		}
		arrived("one change", j, 1)
		if j.job.Mode == config.ModeMesh && j.job.Type == config.TypeFiles {
			seed(j, 2)
			arrived("a second change", j, 2)
			for _, member := range j.job.Targets {
				meshQuiet(t, farm[member], j.job.Name)
			}
		}
	}
	// Each target's Asterisk reloaded the dialplan for the change.
	for _, j := range jobs {
		if j.job.Path != "/etc/asterisk" {
			continue
		}
		for _, target := range j.job.Targets {
			n := farm[target]
			if n.sim == nil {
				continue
			}
			testwait.Eventually(t, target+" reloads pbx_config.so", func() error {
				if c := n.sim.Count("Reload", "Module", "pbx_config.so"); c < 2 {
					return fmt.Errorf("%d reloads of pbx_config.so, want one per change (2)", c)
				}
				return nil
			})
		}
	}
}

// meshQuiet fails the test unless mesh job name on n took the changes of
// the test as a farm at rest does: no conflict record, its state good, a
// few generations and PJSIP reloads (an initial sync and two changes).
// A farm whose members reject each other's versions without end (a check
// that fails on every member did that) has hundreds by now.
func meshQuiet(t *testing.T, n *exNode, name string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), testwait.Limit())
	defer cancel()
	resp, err := control.Call(ctx, control.SocketPath(n.cfg.Node.DataDir), control.Request{Cmd: "status"})
	if err != nil {
		t.Fatalf("%s: status: %v", n.name, err)
	}
	var st struct {
		Jobs []struct {
			Name       string `json:"name"`
			Generation uint64 `json:"generation"`
			State      string `json:"state"`
			LastError  string `json:"last_error"`
			Conflicts  int    `json:"conflicts"`
		} `json:"jobs"`
	}
	if err := json.Unmarshal(resp.Status, &st); err != nil {
		t.Fatalf("%s: status: %v in %s", n.name, err, resp.Status)
	}
	for _, j := range st.Jobs {
		if j.Name != name {
			continue
		}
		if j.Conflicts != 0 || j.State != "good" || j.Generation > 6 {
			t.Errorf("%s: job %s is not at rest after two changes: generation %d, state %q, %d conflict records, last error %q", n.name, name, j.Generation, j.State, j.Conflicts, j.LastError)
		}
		if n.sim != nil {
			if c := n.sim.Count("Reload", "Module", "res_pjsip.so"); c > 6 {
				t.Errorf("%s: %d reloads of res_pjsip.so for an initial sync and two changes", n.name, c)
			}
		}
		return
	}
	t.Errorf("%s: no job %s in its status", n.name, name)
}
