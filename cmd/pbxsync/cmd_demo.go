package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"

	"pbxsync/internal/config"
	"pbxsync/internal/identity"
)

func cmdDemo(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := newFlags("demo", "[--dir DIR] [--script]",
		"Starts a local federation of three agents on 127.0.0.1 (pbx-a pushes its\n/etc/asterisk-like tree to pbx-b and pbx-c) in a temporary directory, prints\nwhere the trees are and what to try, and runs until Ctrl-C. With --script it\ncreates, edits, renames and deletes files, prints how long each step took to\nreach both targets, and exits 0 only if every step converged.", stderr)
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
	if err != nil {
		fmt.Fprintln(stderr, "pbxsync demo:", err)
		return 1
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	errs := make(chan error, len(nodes))
	for _, n := range nodes {
		logf, err := os.Create(filepath.Join(base, n.name+".log"))
		if err != nil {
			fmt.Fprintln(stderr, "pbxsync demo:", err)
			return 1
		}
		defer logf.Close()
		go func() { errs <- runAgent(ctx, n.cfg, newLogger(logf, "info", false), nil) }()
	}
	src, targets := nodes[0], nodes[1:]
	fmt.Fprintf(stdout, "pbxsync demo: three agents on 127.0.0.1\n")
	for _, n := range nodes {
		fmt.Fprintf(stdout, "  %-6s tree %s\n         config %s  log %s\n", n.name, n.tree, n.cfg.File, filepath.Join(base, n.name+".log"))
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
		fmt.Fprintf(stdout, "\nEdit files in %s and watch them appear in the other trees.\nTry: pbxsync status --config %s\n     pbxsync history --config %s --job asterisk\nCtrl-C stops the demo.\n", src.tree, src.cfg.File, targets[0].cfg.File)
		select {
		case <-ctx.Done():
		case err := <-errs:
			fmt.Fprintln(stderr, "pbxsync demo: agent stopped:", err)
			return 1
		}
		return 0
	}
	failed := 0
	for _, st := range demoSteps(src.tree) {
		if err := st.do(); err != nil {
			fmt.Fprintf(stdout, "FAIL %-34s %v\n", st.name, err)
			failed++
			continue
		}
		t0 := time.Now()
		if err := waitUntil(ctx, 5*time.Second, converged); err != nil {
			fmt.Fprintf(stdout, "FAIL %-34s not on both targets after 5 s\n", st.name)
			failed++
			continue
		}
		fmt.Fprintf(stdout, "ok   %-34s on both targets in %4d ms\n", st.name, time.Since(t0).Milliseconds())
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
	}
	for f, c := range seed {
		if err := os.WriteFile(filepath.Join(base, "pbx-a", "tree", f), []byte(c), 0o644); err != nil {
			return nil, err
		}
	}
	var out []demoNode
	for _, n := range names {
		var b strings.Builder
		fmt.Fprintf(&b, "# pbxsync demo node %s\n[node]\nname = %q\nlisten = \"127.0.0.1:%d\"\ndata_dir = %q\n\n", n, n, ports[n], filepath.Join(base, n, "data"))
		for _, p := range names {
			if p != n {
				fmt.Fprintf(&b, "[[peer]]\nname = %q\naddress = \"127.0.0.1:%d\"\nid = %q\n\n", p, ports[p], ids[p].String())
			}
		}
		fmt.Fprintf(&b, "[[job]]\nname = \"asterisk\"\ntype = \"files\"\npath = %q\nmode = \"push\"\nsource = \"pbx-a\"\ntargets = [\"pbx-b\", \"pbx-c\"]\n", filepath.Join(base, n, "tree"))
		path := filepath.Join(base, n, "pbxsync.toml")
		if err := os.WriteFile(path, []byte(b.String()), 0o644); err != nil {
			return nil, err
		}
		cfg, err := config.Load(path)
		if err != nil {
			return nil, err
		}
		out = append(out, demoNode{name: n, tree: filepath.Join(base, n, "tree"), cfg: cfg})
	}
	return out, nil
}

type demoStep struct {
	name string
	do   func() error
}

func demoSteps(root string) []demoStep {
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
	return []demoStep{
		{"add an extension", appendLine("extensions.conf", "exten => 101,1,Dial(PJSIP/101)\n")},
		{"create queues.conf", func() error { return os.WriteFile(p("queues.conf"), []byte("[support]\nstrategy=ringall\n"), 0o644) }},
		{"new directory with a sound", func() error {
			if err := os.MkdirAll(p("sounds/custom"), 0o755); err != nil {
				return err
			}
			return os.WriteFile(p("sounds/custom/welcome.gsm"), bytes.Repeat([]byte{0xd8, 0x20, 0xa2, 0xe1}, 8250), 0o644)
		}},
		{"empty file", func() error { return os.WriteFile(p("extensions_custom.conf"), nil, 0o644) }},
		{"chmod 640 voicemail.conf", func() error { return os.Chmod(p("voicemail.conf"), 0o640) }},
		{"rename queues.conf", func() error { return os.Rename(p("queues.conf"), p("queues_custom.conf")) }},
		{"delete the sound directory", func() error { return os.RemoveAll(p("sounds")) }},
	}
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
