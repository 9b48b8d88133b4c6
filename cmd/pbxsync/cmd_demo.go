package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"

	"pbxsync/internal/amisim"
	"pbxsync/internal/config"
	"pbxsync/internal/control"
	"pbxsync/internal/identity"
	"pbxsync/syncer"
)

func cmdDemo(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := newFlags("demo", "[--dir DIR] [--script]",
		"Starts a local federation of three agents on 127.0.0.1 (pbx-a pushes its\n/etc/asterisk-like tree to pbx-b and pbx-c) in a temporary directory, each\nwith a simulated Asterisk (AMI) that reads the node's tree and answers and\nlogs as a real Asterisk was recorded doing (pbx-c has no res_pjsip, like a\nbox built without pjproject), prints where the trees are and what to try,\nand runs until Ctrl-C. With --script it creates, edits, renames and deletes\nfiles, prints how long each step took to reach both targets and to be\nreloaded there, breaks queues.conf and the dialplan the way a real Asterisk\nrejects them to show the rollbacks, and exits 0 only if every step converged.", stderr)
	dir := fs.String("dir", "", "directory for the demo (default: a new temporary directory, removed at exit)")
	script := fs.Bool("script", false, "run the scripted scenario and exit")
	if code, done := parse(fs, args); done {
		return code
	}
	base := *dir
	if base == "" {
		d, err := os.MkdirTemp("", "pbxsync-demo-")
		if err != nil {
			fmt.Fprintln(stderr, "pbxsync demo:", err)
			return 1
		}
		defer os.RemoveAll(d)
		base = d
	}
	nodes, err := setUpDemo(base)
	for _, n := range nodes {
		defer n.sim.Close(context.Background())
	}
	if err != nil {
		fmt.Fprintln(stderr, "pbxsync demo:", err)
		return 1
	}
	ctx, cancel := context.WithCancel(ctx)
	errs := make(chan error, len(nodes))
	running := 0
	defer func() { // stop the agents before their Asterisks
		cancel()
		for ; running > 0; running-- {
			select {
			case <-errs:
			case <-time.After(5 * time.Second):
				return
			}
		}
	}()
	for _, n := range nodes {
		logf, err := os.Create(filepath.Join(base, n.name+".log"))
		if err != nil {
			fmt.Fprintln(stderr, "pbxsync demo:", err)
			return 1
		}
		defer logf.Close()
		running++
		go func() { errs <- runAgent(ctx, n.cfg, newLogger(logf, "info", false), nil, nil) }()
	}
	src, targets := nodes[0], nodes[1:]
	fmt.Fprintf(stdout, "pbxsync demo: three agents on 127.0.0.1, each with a simulated Asterisk\n")
	for _, n := range nodes {
		fmt.Fprintf(stdout, "  %-6s tree %s\n         config %s  log %s\n         AMI %s  Asterisk log %s\n", n.name, n.tree, n.cfg.File, filepath.Join(base, n.name+".log"), n.sim.Addr(), n.astLog)
	}
	converged := func() bool {
		for _, t := range targets {
			if sameTree(src.tree, t.tree) != nil {
				return false
			}
		}
		return true
	}
	if err := waitUntil(ctx, 15*time.Second, converged); err != nil {
		fmt.Fprintln(stderr, "pbxsync demo: initial sync did not converge:", err)
		return 1
	}
	if !*script {
		fmt.Fprintf(stdout, "\nEdit files in %s and watch them appear in the other trees.\nTry: %s status --config %s\n     %s history --config %s --job asterisk\n", src.tree, self, src.cfg.File, self, targets[0].cfg.File)
		fmt.Fprintf(stdout, "\nDashboard of %s: http://%s/\n     its actions (rollback, sync now) need the token of: %s token --config %s\n", src.name, src.cfg.Node.HTTP, self, src.cfg.File)
		fmt.Fprintf(stdout, "\nTo see a rollback, break a file the way Asterisk rejects it, e.g. an unclosed\ncategory in queues.conf:\n     printf '[sales\\n' >> %s\nThe simulated Asterisk answers Success and logs, as a real one does,\n  WARNING[…] config.c: parse error: no closing ']', line N of …/queues.conf\n  ERROR[…] app_queue.c: Config file queues.conf is in an invalid format.  Aborting.\nso the targets restore their previous queues.conf and reload it. See it with\n     %s history --config %s --job asterisk\n     %s status  --config %s   (targets: bad, with the log line as reason)\nthen remove the line to fix it. Ctrl-C stops the demo.\n",
			filepath.Join(src.tree, "queues.conf"), self, targets[0].cfg.File, self, src.cfg.File)
		select {
		case <-ctx.Done():
		case err := <-errs:
			running--
			fmt.Fprintln(stderr, "pbxsync demo: agent stopped:", err)
			return 1
		}
		return 0
	}
	failed := 0
	for _, st := range demoSteps(src, targets) {
		// Each step starts with the targets idle (their log checks of the
		// previous step done), so its timing is its own.
		waitUntil(ctx, 5*time.Second, func() bool { return demoSettled(ctx, targets) })
		reloadsBefore := make([]int, len(targets))
		for i, t := range targets {
			reloadsBefore[i] = t.sim.Count("Reload", "Module", st.reload)
		}
		if err := st.do(); err != nil {
			fmt.Fprintf(stdout, "FAIL %-38s %v\n", st.name, err)
			failed++
			continue
		}
		t0 := time.Now()
		if st.wait != nil {
			if err := waitUntil(ctx, 5*time.Second, st.wait); err != nil {
				fmt.Fprintf(stdout, "FAIL %-38s not %s after 5 s\n", st.name, st.done)
				failed++
				continue
			}
			fmt.Fprintf(stdout, "ok   %-38s %s in %4d ms\n", st.name, st.done, time.Since(t0).Milliseconds())
			continue
		}
		if err := waitUntil(ctx, 5*time.Second, converged); err != nil {
			fmt.Fprintf(stdout, "FAIL %-38s not on both targets after 5 s\n", st.name)
			failed++
			continue
		}
		took := time.Since(t0)
		if st.reload == "" {
			fmt.Fprintf(stdout, "ok   %-38s on both targets in %4d ms\n", st.name, took.Milliseconds())
			continue
		}
		// The file is there; wait for each target's Asterisk to have
		// acknowledged the reload, and report when the last one did.
		var acked time.Time
		reloaded := func() bool {
			for i, t := range targets {
				if t.sim.Count("Reload", "Module", st.reload) <= reloadsBefore[i] {
					return false
				}
				for _, a := range t.sim.Actions() {
					if a.Name == "Reload" && a.Get("Module") == st.reload && a.At.After(acked) {
						acked = a.At
					}
				}
			}
			return true
		}
		if err := waitUntil(ctx, 5*time.Second, reloaded); err != nil {
			fmt.Fprintf(stdout, "FAIL %-38s on both targets in %d ms, but %s was not reloaded on both after 5 s\n", st.name, took.Milliseconds(), st.reload)
			failed++
			continue
		}
		fmt.Fprintf(stdout, "ok   %-38s on both targets in %4d ms, reload acknowledged in %4d ms (%s)%s\n", st.name, took.Milliseconds(), max(acked.Sub(t0), 0).Milliseconds(), st.reload, st.note)
	}
	if failed > 0 {
		fmt.Fprintf(stdout, "%d steps failed; logs in %s\n", failed, base)
		return 1
	}
	fmt.Fprintln(stdout, "every step converged")
	return 0
}

type demoNode struct {
	name string
	tree string
	cfg  *config.Config
	sim  *amisim.Server // the node's simulated Asterisk; its ConfigDir is the tree
	// astLog is the simulated Asterisk's log; the agent finds it through
	// AMI (logger show channels).
	astLog string
}

func setUpDemo(base string) ([]demoNode, error) {
	names := []string{"pbx-a", "pbx-b", "pbx-c"}
	ids := map[string]identity.ID{}
	ports := map[string]int{}
	for _, n := range names {
		id, err := identity.LoadOrCreate(filepath.Join(base, n, "data"))
		if err != nil {
			return nil, err
		}
		ids[n] = id.ID
		pc, err := net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		ports[n] = pc.LocalAddr().(*net.UDPAddr).Port
		pc.Close()
		if err := os.MkdirAll(filepath.Join(base, n, "tree"), 0o755); err != nil {
			return nil, err
		}
	}
	seed := map[string]string{
		"extensions.conf": "[from-internal]\nexten => 100,1,Answer()\n same => n,Playback(hello-world)\n same => n,Hangup()\n",
		"pjsip.conf":      "[transport-udp]\ntype=transport\nprotocol=udp\nbind=0.0.0.0\n",
		"voicemail.conf":  "[default]\n100 => 1234,Alice,alice@example.com\n",
		"queues.conf":     "[general]\npersistentmembers = yes\n\n[support]\nstrategy = ringall\n",
	}
	for f, c := range seed {
		if err := os.WriteFile(filepath.Join(base, "pbx-a", "tree", f), []byte(c), 0o644); err != nil {
			return nil, err
		}
	}
	// The simulated Asterisks answer and log as the real one recorded in
	// internal/amisim/testdata did; that one was built without pjproject,
	// so res_pjsip is loaded here by hand, except on pbx-c.
	recorded, err := amisim.Recorded()
	if err != nil {
		return nil, err
	}
	var out []demoNode
	for _, n := range names {
		secret, secretFile := demoSecret(), filepath.Join(base, n, "ami.secret")
		if err := os.WriteFile(secretFile, []byte(secret+"\n"), 0o600); err != nil {
			return out, err
		}
		astLog := filepath.Join(base, n+"-asterisk.log")
		simCfg := amisim.Config{Username: "pbxsync", Secret: secret, SystemName: n, ConfigDir: filepath.Join(base, n, "tree"), LogPath: astLog, Transcript: recorded}
		sim, err := amisim.Start(simCfg)
		if err != nil {
			return out, err
		}
		if n != "pbx-c" {
			sim.SetModuleLoaded("res_pjsip.so", true)
		}
		// No [asterisk] log below: the agent asks its Asterisk where it
		// logs, as on a real one.
		sim.SetCommand("core show settings", []string{"", "PBX Core settings", "-----------------", "  Log directory:               " + base}, false)
		sim.SetCommand("logger show channels", []string{"Logger queue limit: 1000", "",
			fmt.Sprintf("%-35.35s %-8.8s %-10.10s %-9.9s Configuration", "Channel", "Type", "Formatter", "Status"),
			fmt.Sprintf("%-35.35s %-8.8s %-10.10s %-9.9s -------------", "-------", "----", "---------", "------"),
			fmt.Sprintf("%-35.35s %-8.8s %-10.10s %-9.9s  - NOTICE WARNING ERROR ", astLog, "File", "default", "Enabled"),
		}, false)
		out = append(out, demoNode{name: n, tree: filepath.Join(base, n, "tree"), sim: sim, astLog: astLog})
		var b strings.Builder
		fmt.Fprintf(&b, "# pbxsync demo node %s\n[node]\nname = %q\nlisten = \"127.0.0.1:%d\"\ndata_dir = %q\n", n, n, ports[n], filepath.Join(base, n, "data"))
		if n == names[0] {
			// the source serves the dashboard
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				return out, err
			}
			fmt.Fprintf(&b, "http = %q\n", ln.Addr().String())
			ln.Close()
		}
		b.WriteString("\n")
		for _, p := range names {
			if p != n {
				fmt.Fprintf(&b, "[[peer]]\nname = %q\naddress = \"127.0.0.1:%d\"\nid = %q\n\n", p, ports[p], ids[p].String())
			}
		}
		fmt.Fprintf(&b, "[asterisk]\nami = %q\nusername = \"pbxsync\"\nsecret_file = %q\n\n", sim.Addr(), secretFile)
		fmt.Fprintf(&b, "[[job]]\nname = \"asterisk\"\ntype = \"files\"\npath = %q\nmode = \"push\"\nsource = \"pbx-a\"\ntargets = [\"pbx-b\", \"pbx-c\"]\n", filepath.Join(base, n, "tree"))
		path := filepath.Join(base, n, "pbxsync.toml")
		if err := os.WriteFile(path, []byte(b.String()), 0o644); err != nil {
			return out, err
		}
		cfg, err := config.Load(path)
		if err != nil {
			return out, err
		}
		out[len(out)-1].cfg = cfg
	}
	return out, nil
}

// demoSecret returns a fresh AMI secret for a simulated Asterisk.
func demoSecret() string {
	b := make([]byte, 16)
	rand.Read(b)
	return hex.EncodeToString(b)
}

type demoStep struct {
	name   string
	do     func() error
	reload string      // module each target's Asterisk must reload, "" for none
	wait   func() bool // what to wait for instead of both targets holding the source's tree
	done   string      // what wait means, for the report
	note   string      // added to the report line
}

func demoSteps(src demoNode, targets []demoNode) []demoStep {
	root := src.tree
	p := func(rel string) string { return filepath.Join(root, rel) }
	appendLine := func(rel, line string) func() error {
		return func() error {
			f, err := os.OpenFile(p(rel), os.O_APPEND|os.O_WRONLY, 0)
			if err != nil {
				return err
			}
			defer f.Close()
			_, err = f.WriteString(line)
			return err
		}
	}
	// Files broken the way a real Asterisk rejects them: each target
	// restores its previous file and reloads it again.
	type breakage struct {
		file, module string
		good         []byte
		reloads      []int
	}
	breakFile := func(b *breakage, bad func(good []byte) []byte) (do func() error, rolledBack func() bool) {
		do = func() error {
			var err error
			if b.good, err = os.ReadFile(p(b.file)); err != nil {
				return err
			}
			b.reloads = make([]int, len(targets))
			for i, t := range targets {
				b.reloads[i] = t.sim.Count("Reload", "Module", b.module)
			}
			return replaceFile(p(b.file), bad(bytes.Clone(b.good)))
		}
		rolledBack = func() bool {
			for i, t := range targets {
				got, err := os.ReadFile(filepath.Join(t.tree, b.file))
				if err != nil || !bytes.Equal(got, b.good) || t.sim.Count("Reload", "Module", b.module) < b.reloads[i]+2 {
					return false
				}
			}
			return true
		}
		return do, rolledBack
	}
	// Reload answers Success, only the log shows the parse error.
	queues := &breakage{file: "queues.conf", module: "app_queue.so"}
	breakQueues, queuesRolledBack := breakFile(queues, func(good []byte) []byte {
		return append([]byte("[general]\n;\n; Global settings for call queues\n[sales\n"), good...)
	})
	// Reload answers Error: "An unknown error occurred".
	dialplan := &breakage{file: "extensions.conf", module: "pbx_config.so"}
	breakDialplan, dialplanRolledBack := breakFile(dialplan, func(good []byte) []byte {
		return append(good, "\n[from-external\nexten => 102,1,Hangup()\n"...)
	})
	return []demoStep{
		{name: "add an extension", do: appendLine("extensions.conf", "exten => 101,1,Dial(PJSIP/101)\n"), reload: "pbx_config.so"},
		{name: "edit queues.conf", do: appendLine("queues.conf", "\n[sales]\nstrategy = leastrecent\n"), reload: "app_queue.so"},
		{name: "break queues.conf ([sales unclosed)", do: breakQueues, wait: queuesRolledBack, done: "Asterisk logged the parse error; rolled back on both targets"},
		{name: "fix queues.conf", do: func() error { return replaceFile(p("queues.conf"), queues.good) }},
		{name: "new directory with a sound", do: func() error {
			if err := os.MkdirAll(p("sounds/custom"), 0o755); err != nil {
				return err
			}
			return os.WriteFile(p("sounds/custom/welcome.gsm"), bytes.Repeat([]byte{0xd8, 0x20, 0xa2, 0xe1}, 8250), 0o644)
		}},
		{name: "empty file", do: func() error { return os.WriteFile(p("extensions_custom.conf"), nil, 0o644) }},
		{name: "chmod 640 voicemail.conf", do: func() error { return os.Chmod(p("voicemail.conf"), 0o640) }},
		{name: "rename queues.conf", do: func() error { return os.Rename(p("queues.conf"), p("queues_custom.conf")) }},
		{name: "delete the sound directory", do: func() error { return os.RemoveAll(p("sounds")) }},
		{name: "edit pjsip.conf", do: appendLine("pjsip.conf", "\n[100]\ntype=endpoint\ncontext=from-internal\n"), reload: "res_pjsip.so",
			note: "; pbx-c has no res_pjsip: Asterisk answered No such module, the file landed and the reload was skipped"},
		{name: "break the dialplan ([from-external)", do: breakDialplan, wait: dialplanRolledBack, done: "refused by Asterisk and rolled back on both targets"},
		{name: "fix the dialplan", do: func() error { return replaceFile(p("extensions.conf"), dialplan.good) }},
	}
}

// demoSettled reports whether no target is applying a generation.
func demoSettled(ctx context.Context, targets []demoNode) bool {
	for _, t := range targets {
		cctx, cancel := context.WithTimeout(ctx, time.Second)
		resp, err := control.Call(cctx, control.SocketPath(t.cfg.Node.DataDir), control.Request{Cmd: "status"})
		cancel()
		if err != nil {
			return false
		}
		var st syncer.Status
		if json.Unmarshal(resp.Status, &st) != nil {
			return false
		}
		for _, j := range st.Jobs {
			if j.State == "applying" {
				return false
			}
		}
	}
	return true
}

// replaceFile puts content into path atomically, as an editor that saves
// by rename does: the agent never sees half a file.
func replaceFile(path string, content []byte) error {
	tmp := filepath.Join(filepath.Dir(filepath.Dir(path)), "."+filepath.Base(path)+".tmp")
	if err := os.WriteFile(tmp, content, 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// sameTree reports the first difference between two trees: a path, its
// kind, mode or content.
func sameTree(a, b string) error {
	seen := map[string]bool{}
	err := filepath.WalkDir(a, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(a, path)
		seen[rel] = true
		other := filepath.Join(b, rel)
		sa, err := os.Lstat(path)
		if err != nil {
			return err
		}
		sb, err := os.Lstat(other)
		if err != nil {
			return fmt.Errorf("%s: %w", rel, err)
		}
		if sa.Mode() != sb.Mode() && rel != "." {
			return fmt.Errorf("%s: mode %v vs %v", rel, sa.Mode(), sb.Mode())
		}
		if sa.Mode().IsRegular() {
			ca, err := os.ReadFile(path)
			if err != nil {
				return err
			}
			cb, err := os.ReadFile(other)
			if err != nil {
				return err
			}
			if !bytes.Equal(ca, cb) {
				return fmt.Errorf("%s: content differs", rel)
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	return filepath.WalkDir(b, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(b, path)
		if !seen[rel] {
			return fmt.Errorf("%s: only in %s", rel, b)
		}
		return nil
	})
}

func waitUntil(ctx context.Context, limit time.Duration, cond func() bool) error {
	deadline := time.Now().Add(limit)
	for time.Now().Before(deadline) {
		if cond() {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(5 * time.Millisecond):
		}
	}
	return errors.New("timed out")
}
