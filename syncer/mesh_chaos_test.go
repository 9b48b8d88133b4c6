package syncer

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"pbxsync/internal/config"
	"pbxsync/internal/identity"
	"pbxsync/internal/store"
)

// chaosMemberEnv names the config file a child process of TestMeshChaos
// runs an agent with (TestMeshChaosMember).
const chaosMemberEnv = "PBXSYNC_CHAOS_MEMBER"

// TestMeshChaosMember is a member agent of TestMeshChaos in a child
// process, so that the test can kill it with SIGKILL. It does nothing in a
// normal test run.
func TestMeshChaosMember(t *testing.T) {
	file := os.Getenv(chaosMemberEnv)
	if file == "" {
		return // not a child of TestMeshChaos
	}
	cfg, err := config.Load(file)
	if err != nil {
		t.Fatal(err)
	}
	id, err := identity.LoadOrCreate(cfg.Node.DataDir)
	if err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug})).With("node", cfg.Node.Name)
	a, err := New(Options{Config: cfg, Identity: id, Log: log, Version: "chaos"})
	if err != nil {
		t.Fatal(err)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM)
	defer stop()
	a.Run(ctx)
	os.Exit(0)
}

// chaosWrite is one change the chaos test made to a member's tree: the
// content it wrote ("" with deleted) and what the file held just before.
type chaosWrite struct {
	node, path      string
	content         string
	deleted         bool
	prev            string
	prevExisted     bool
	step            int
	agentWasRunning bool
	// noChange: a delete made while the member's agent was down, after
	// which the tree, when the agent started again, had no file at path
	// and the agent's saved mesh index no live entry either: to the agent
	// nothing changed there (a file no agent saw came and went), so no
	// version of this delete exists to be live or to lose a conflict.
	noChange bool
}

// chaosSave writes content to path as an editor saves (a temporary file
// renamed over it), swapping it with what is there (RENAME_EXCHANGE), and
// returns what it replaced, read from where the swap moved it, and
// whether there was anything.
func chaosSave(t *testing.T, path, content string) (prev string, existed bool) {
	t.Helper()
	tmp := path + ".chaos-tmp~"
	if err := os.WriteFile(tmp, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	for range 100 {
		err := unix.Renameat2(unix.AT_FDCWD, tmp, unix.AT_FDCWD, path, unix.RENAME_EXCHANGE)
		if err == nil {
			b, err := os.ReadFile(tmp)
			if err != nil {
				t.Fatal(err)
			}
			os.Remove(tmp)
			return string(b), true
		}
		if !errors.Is(err, unix.ENOENT) {
			t.Fatalf("swap %s into place: %v", path, err)
		}
		// nothing there: put it there unless something came meanwhile
		err = unix.Renameat2(unix.AT_FDCWD, tmp, unix.AT_FDCWD, path, unix.RENAME_NOREPLACE)
		if err == nil {
			return "", false
		}
		if !errors.Is(err, unix.EEXIST) {
			t.Fatalf("rename %s into place: %v", path, err)
		}
	}
	t.Fatalf("%s came and went 100 times while it was written", path)
	return "", false
}

// chaosRemove removes the file at path by renaming it aside first, and
// returns what it removed; false when nothing was there any more.
func chaosRemove(t *testing.T, path string) (prev string, removed bool) {
	t.Helper()
	aside := path + ".chaos-rm~"
	if err := os.Rename(path, aside); err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return "", false
		}
		t.Fatal(err)
	}
	b, err := os.ReadFile(aside)
	if err != nil {
		t.Fatal(err)
	}
	os.Remove(aside)
	return string(b), true
}

// TestMeshChaos: three members in child processes, each reaching the
// others through wanlink forwarders; for CHAOS_DURATION (default 15 s;
// `make chaos` runs 10 min, `make test` 60 s) a seeded random run of edits
// and deletes on every member (shared paths and each member's own), cut
// and healed links, SIGKILLs and restarts of members. Then every link
// heals and every member runs: all trees must become identical, hold only
// content the test wrote, and every write must be live, the loser of a
// conflict record (content or deletion), or replaced by a later write
// made over it. The seed is printed; CHAOS_SEED replays the same
// sequence of actions (the agents' timing still varies).
func TestMeshChaos(t *testing.T) {
	t.Parallel()
	if os.Getenv(chaosMemberEnv) != "" {
		return
	}
	duration := 15 * time.Second
	if v := os.Getenv("CHAOS_DURATION"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil {
			t.Fatalf("CHAOS_DURATION=%q: %v", v, err)
		}
		duration = d
	}
	seed := time.Now().UnixNano()
	if v := os.Getenv("CHAOS_SEED"); v != "" {
		s, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			t.Fatalf("CHAOS_SEED=%q: %v", v, err)
		}
		seed = s
	}
	t.Logf("chaos seed %d for %s (replay: CHAOS_SEED=%d CHAOS_DURATION=%s go test -run '^TestMeshChaos$' ./syncer/)", seed, duration, seed, duration)
	fmt.Fprintf(os.Stderr, "chaos seed %d (CHAOS_SEED=%d replays it)\n", seed, seed)
	rng := rand.New(rand.NewSource(seed))

	nodes, link := meshTrio(t, "", true)
	// the actions, timed like the members' logs, beside them: a failure
	// is read against both
	actions, err := os.Create(filepath.Join(nodes[0].h.base, "actions.log"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { actions.Close() })
	note := func(format string, args ...any) {
		fmt.Fprintf(actions, "%s "+format+"\n", append([]any{time.Now().UTC().Format("15:04:05.000000")}, args...)...)
	}
	procs := map[string]*exec.Cmd{}
	logs := map[string]*os.File{}
	var writes []chaosWrite
	downSince := map[string]int{} // member -> its first write while its agent is down
	// noChanges marks the deletes n's tree saw while its agent was down
	// that leave nothing for the agent to see (chaosWrite.noChange).
	noChanges := func(n *tnode) {
		from, ok := downSince[n.name]
		if !ok {
			return
		}
		delete(downSince, n.name)
		var saved meshPersisted
		st, err := store.OpenReadOnly(filepath.Join(n.data, "store"), slog.New(slog.DiscardHandler))
		switch {
		case errors.Is(err, store.ErrNotFound):
			// killed before it made its store: it saved nothing
		case err != nil:
			t.Fatal(err)
		default:
			defer st.Close()
			if _, err := st.JobState("conf", &saved); err != nil {
				t.Fatal(err)
			}
		}
		for i := from; i < len(writes); i++ {
			w := &writes[i]
			if w.node != n.name || !w.deleted {
				continue
			}
			if _, err := os.Lstat(n.path(w.path)); err == nil {
				continue
			}
			if b, ok := saved.Mesh[w.path]; ok {
				it, err := store.UnmarshalItem(w.path, b)
				if err != nil {
					t.Fatal(err)
				}
				if !it.Deleted {
					continue
				}
			}
			w.noChange = true
		}
	}
	start := func(n *tnode) {
		noChanges(n)
		file := filepath.Join(n.h.base, n.name, "pbxsync.toml")
		if err := os.WriteFile(file, []byte(n.configText()), 0o600); err != nil {
			t.Fatal(err)
		}
		if logs[n.name] == nil {
			f, err := os.Create(filepath.Join(n.h.base, n.name+".log"))
			if err != nil {
				t.Fatal(err)
			}
			logs[n.name] = f
			t.Cleanup(func() { f.Close() })
		}
		fmt.Fprintf(logs[n.name], "----- %s started -----\n", time.Now().Format("15:04:05.000"))
		cmd := exec.Command(os.Args[0], "-test.run=^TestMeshChaosMember$", "-test.count=1")
		cmd.Env = append(childEnv(), chaosMemberEnv+"="+file)
		cmd.Stdout, cmd.Stderr = logs[n.name], logs[n.name]
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		procs[n.name] = cmd
		// a change made before the agent's first scan is one it never
		// sees, as one made while it was down (noChanges): wait for that
		// scan (the deadline only bounds a hang)
		logName := logs[n.name].Name()
		for until := time.Now().Add(2 * time.Minute); ; time.Sleep(5 * time.Millisecond) {
			b, _ := os.ReadFile(logName)
			if i := bytes.LastIndex(b, []byte(" started -----")); i >= 0 && bytes.Contains(b[i:], []byte(`msg="tree scanned; a change from now on is seen"`)) {
				break
			}
			if time.Now().After(until) {
				t.Fatalf("%s: its agent did not finish its first scan in 2 minutes", n.name)
			}
		}
	}
	kill := func(n *tnode) {
		if cmd := procs[n.name]; cmd != nil {
			cmd.Process.Signal(syscall.SIGKILL)
			cmd.Wait()
			fmt.Fprintf(logs[n.name], "----- %s SIGKILL -----\n", time.Now().Format("15:04:05.000"))
			delete(procs, n.name)
			downSince[n.name] = len(writes)
		}
	}
	t.Cleanup(func() {
		for _, cmd := range procs {
			cmd.Process.Signal(syscall.SIGTERM)
		}
		for _, cmd := range procs {
			done := make(chan struct{})
			go func() { cmd.Wait(); close(done) }()
			select {
			case <-done:
			case <-time.After(30 * time.Second):
				cmd.Process.Kill()
			}
		}
		if t.Failed() {
			keep := filepath.Join(os.TempDir(), fmt.Sprintf("pbxsync-chaos-%d", seed))
			os.MkdirAll(keep, 0o755)
			b, _ := os.ReadFile(filepath.Join(nodes[0].h.base, "actions.log"))
			os.WriteFile(filepath.Join(keep, "actions.log"), b, 0o644)
			for _, n := range nodes {
				b, _ := os.ReadFile(filepath.Join(n.h.base, n.name+".log"))
				os.WriteFile(filepath.Join(keep, n.name+".log"), b, 0o644)
				lines := strings.Split(string(b), "\n")
				var keep []string
				for _, l := range lines {
					if !strings.Contains(l, "level=DEBUG") {
						keep = append(keep, l)
					}
				}
				if len(keep) > 300 {
					keep = keep[len(keep)-300:]
				}
				t.Logf("===== log of %s (not DEBUG, last 300 lines) =====\n%s", n.name, strings.Join(keep, "\n"))
			}
			t.Logf("replay: CHAOS_SEED=%d CHAOS_DURATION=%s; the members' whole logs are in %s", seed, duration, keep)
		}
	})
	for _, n := range nodes {
		start(n)
	}

	shared := []string{"s0.conf", "s1.conf", "s2.conf", "d/s3.conf"}
	cutOff := map[string]bool{}
	setCut := func(name string, cut bool) {
		cutOff[name] = cut
		for k, l := range link {
			l.SetBlocked(cutOff[k[0]] || cutOff[k[1]])
		}
	}
	deadline := time.Now().Add(duration)
	for step := 0; time.Now().Before(deadline); step++ {
		n := nodes[rng.Intn(len(nodes))]
		switch k := rng.Intn(20); {
		case k < 12: // an edit or a delete
			path := shared[rng.Intn(len(shared))]
			if rng.Intn(4) == 0 {
				path = fmt.Sprintf("own-%s-%d.conf", n.name, rng.Intn(3))
			}
			// what a change replaced is what its rename moved out of the
			// way, read after it: a read before could see an older version
			// than one an agent renamed in meanwhile, and the change, which
			// replaced that version, would count it as lost (a seed of
			// 2026-12-05 did: c's edit landed 2 ms after c's agent put b's
			// version there)
			w := chaosWrite{node: n.name, path: path, step: step, agentWasRunning: procs[n.name] != nil}
			if _, err := os.Lstat(n.path(path)); err == nil && rng.Intn(5) == 0 {
				w.deleted = true
				var ok bool
				if w.prev, ok = chaosRemove(t, n.path(path)); !ok {
					note("step %d %s: found nothing to remove at %s", step, n.name, path)
					continue
				}
				w.prevExisted = true
				note("step %d %s: removed %s (was %q)", step, n.name, path, w.prev)
			} else {
				w.content = fmt.Sprintf("%s step %d %08x\n", n.name, step, rng.Uint32())
				os.MkdirAll(filepath.Dir(n.path(path)), 0o755)
				w.prev, w.prevExisted = chaosSave(t, n.path(path), w.content)
				note("step %d %s: wrote %s = %q (was %q)", step, n.name, path, w.content, w.prev)
			}
			writes = append(writes, w)
		case k < 15: // cut a member off, or heal
			if rng.Intn(2) == 0 {
				setCut(n.name, true)
				note("step %d %s: cut off", step, n.name)
			} else {
				note("step %d: every link healed", step)
				for _, m := range nodes {
					setCut(m.name, false)
				}
			}
		case k < 17: // SIGKILL, or start again
			if procs[n.name] != nil {
				kill(n)
				note("step %d %s: SIGKILL", step, n.name)
			} else {
				start(n)
				note("step %d %s: started", step, n.name)
			}
		}
		time.Sleep(time.Duration(20+rng.Intn(300)) * time.Millisecond)
	}
	for _, m := range nodes {
		setCut(m.name, false)
		if procs[m.name] == nil {
			start(m)
		}
	}
	note("every link healed and every member running")
	t.Logf("%d changes made; waiting for the members to converge", len(writes))
	sameContent(t, "all members converge after the chaos", nodes...)

	// Every write accounted for.
	final, err := snapshot(nodes[0].tree)
	if err != nil {
		t.Fatal(err)
	}
	written := map[string]bool{}
	for _, w := range writes {
		written[w.path+"\x00"+w.content] = true
	}
	for p, e := range final {
		if !e.dir && !written[p+"\x00"+string(e.content)] {
			t.Errorf("%s holds %q, which no member wrote there", p, e.content)
		}
	}
	type loser struct {
		path    string
		content string
		deleted bool
	}
	kept := map[loser]bool{}
	for _, n := range nodes {
		st, err := store.OpenReadOnly(filepath.Join(n.data, "store"), slog.New(slog.DiscardHandler))
		if err != nil {
			t.Fatal(err)
		}
		cs, err := st.Conflicts("conf")
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range cs {
			if c.Loser.Deleted {
				kept[loser{path: c.Path, deleted: true}] = true
				continue
			}
			var buf bytes.Buffer
			if _, err := st.CopyTo(context.Background(), c.Loser.Hash, &buf); err != nil {
				t.Errorf("%s: conflict %s at %s: the losing content is not readable: %v", n.name, c.ID, c.Path, err)
			}
			kept[loser{path: c.Path, content: buf.String()}] = true
		}
		st.Close()
	}
	lost, noChange := 0, 0
	for i, w := range writes {
		e, live := final[w.path]
		switch {
		case w.noChange:
			noChange++
			continue
		case w.deleted && !live, !w.deleted && live && string(e.content) == w.content:
			continue // live
		case kept[loser{path: w.path, content: w.content, deleted: w.deleted}]:
			continue // the loser of a conflict
		}
		replaced := false
		for _, later := range writes[i+1:] {
			if later.path == w.path && (w.deleted && !later.prevExisted || !w.deleted && later.prevExisted && later.prev == w.content) {
				replaced = true
				break
			}
		}
		if !replaced {
			lost++
			t.Errorf("write lost: step %d on %s: %s %s (agent running: %v)", w.step, w.node, w.path, map[bool]string{true: "deleted", false: fmt.Sprintf("= %q", w.content)}[w.deleted], w.agentWasRunning)
		}
	}
	t.Logf("%d changes, %d conflict losers kept, %d deletes no agent could see, %d lost", len(writes), len(kept), noChange, lost)
	// what the members' guards did in this run, from their logs
	var logText []byte
	for _, n := range nodes {
		b, _ := os.ReadFile(filepath.Join(n.h.base, n.name+".log"))
		logText = append(logText, b...)
	}
	count := func(s string) int { return bytes.Count(logText, []byte(s)) }
	t.Logf("guards: %d applies refused by the rescan, %d by the check before the renames, %d at a rename; %d interrupted applies rolled forward, %d of their files left as changed while down",
		count("changed here while the member's version was fetched"), count("changed here while the member's version was applied; deciding again\""),
		count("(found at its rename)"), count("rolling forward an interrupted apply"), count("changed here while the agent was down"))
}
