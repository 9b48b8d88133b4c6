package syncer

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"pbxsync/internal/config"
)

// checksFailHereText is what the status of a member whose checks fail on
// the content before too says.
const checksFailHereText = "checks fail here on the content they had before too"

// meshCounts returns, per member, the number of generations and of
// conflict records of job conf.
func meshCounts(t testing.TB, nodes ...*tnode) map[string][2]int {
	t.Helper()
	out := map[string][2]int{}
	for _, n := range nodes {
		gens, err := n.a().Store().Generations("conf")
		if err != nil {
			t.Fatal(err)
		}
		cs, err := n.a().Store().Conflicts("conf")
		if err != nil {
			t.Fatal(err)
		}
		out[n.name] = [2]int{len(gens), len(cs)}
	}
	return out
}

// TestMeshChecksFailEverywhere: three members whose check fails whatever
// the content (`false`), each with a file of its own before they start:
// each takes the others' files, its check fails, and fails again on the
// content rolled back, so the fault is its own. No member reverts, none
// records a conflict or a version of its own, and the farm goes quiet:
// across an edit on a (which reaches the others through a second job
// without a check) and further runs of the checks, the number of
// generations and conflict records stays the same. Before, each member
// reverted what it could not take, the others rejected the revert, and so
// on: hundreds of generations and conflict records a second.
func TestMeshChecksFailEverywhere(t *testing.T) {
	t.Parallel()
	nodes, _ := meshTrio(t, "check = \"false\"\n", false)
	a, b, c := nodes[0], nodes[1], nodes[2]
	for _, n := range nodes {
		other := filepath.Join(filepath.Dir(n.tree), "other")
		if err := os.MkdirAll(other, 0o755); err != nil {
			t.Fatal(err)
		}
		n.Jobs = append(n.Jobs, tjob{Name: "other", Path: other, Mode: config.ModeMesh, Targets: []string{"a", "b", "c"}})
		n.tune = func(o *Options) { o.ChecksRetry = time.Millisecond } // each tick
		n.write(n.name+".conf", "from "+n.name+"\n", 0o644)
	}
	for _, n := range nodes {
		n.start()
	}
	quietSince := map[string]uint64{}
	eventually(t, waitLimit, "every member's status says its checks fail on the content before too", func() error {
		for name, cnt := range meshCounts(t, a, b, c) {
			if cnt[1] > 0 {
				t.Fatalf("%s records %d conflicts: the members reject each other's versions (%v)", name, cnt[1], meshCounts(t, a, b, c))
			}
		}
		for _, n := range nodes {
			st, _ := n.jobStatus("conf")
			if st.State != "checks-failing" || !strings.Contains(st.LastError, checksFailHereText) {
				return fmt.Errorf("%s: state %q: %q", n.name, st.State, st.LastError)
			}
			quietSince[n.name] = st.CheckRetries
		}
		return nil
	})
	for _, n := range nodes {
		if err := n.a().Healthy(context.Background()); err == nil {
			t.Errorf("%s is healthy although its checks fail whatever the content", n.name)
		}
	}
	before := meshCounts(t, a, b, c)
	for name, cnt := range before {
		// the initial generation, and one rolled back per member whose
		// files it could not take (at most two)
		if cnt[0] > 3 || cnt[1] != 0 {
			t.Errorf("%s: %d generations, %d conflict records, want at most 3 and none", name, cnt[0], cnt[1])
		}
	}
	// a further exchange: an edit on a reaches b and c (job other), and
	// each member runs its checks again, twice
	os.WriteFile(filepath.Join(filepath.Dir(a.tree), "other", "o.conf"), []byte("o\n"), 0o644)
	a.replace("a.conf", []byte("edited on a\n"), 0o644)
	eventually(t, waitLimit, "a's edit of the other job reaches b and c, and every member ran its checks again", func() error {
		for _, n := range []*tnode{b, c} {
			if _, err := os.Stat(filepath.Join(filepath.Dir(n.tree), "other", "o.conf")); err != nil {
				return err
			}
		}
		for _, n := range nodes {
			st, _ := n.jobStatus("conf")
			if st.CheckRetries < quietSince[n.name]+2 {
				return fmt.Errorf("%s ran its checks again %d times, %d before", n.name, st.CheckRetries, quietSince[n.name])
			}
		}
		return nil
	})
	want := before
	want["a"] = [2]int{before["a"][0] + 1, before["a"][1]} // a's edit: its own generation
	if after := meshCounts(t, a, b, c); fmt.Sprint(after) != fmt.Sprint(want) {
		t.Errorf("generations and conflict records while the checks failed everywhere: %v, then %v, want %v", before, after, want)
	}
	for _, n := range nodes {
		for _, o := range nodes {
			if o != n {
				if _, err := os.Stat(n.path(o.name + ".conf")); err == nil {
					t.Errorf("%s holds %s's file although its checks fail", n.name, o.name)
				}
			}
		}
		if got := string(n.read(n.name + ".conf")); n == a && got != "edited on a\n" || n != a && got != "from "+n.name+"\n" {
			t.Errorf("%s's own file holds %q", n.name, got)
		}
	}
}

// checksFixedLater: a writes x.conf; b's check passes only once the file
// ../fixed exists (beside its tree), so it fails on everything first: b
// does not take a's version, c does, nobody records a conflict. Then
// fix makes the file and makes b run its checks again: b takes a's version.
func checksFixedLater(t *testing.T, retry time.Duration, fix func(b *tnode)) {
	nodes, _ := meshTrio(t, "", false)
	a, b, c := nodes[0], nodes[1], nodes[2]
	b.Jobs[0].Extra = "check = \"test -e ../fixed\"\n"
	b.tune = func(o *Options) { o.ChecksRetry = retry }
	a.write("old.conf", "there before\n", 0o644)
	for _, n := range nodes {
		n.start()
	}
	eventually(t, waitLimit, "b's checks fail on everything", func() error {
		// c's versions wait too once c took a's files
		if st, _ := b.jobStatus("conf"); st.State != "checks-failing" || !strings.Contains(st.LastError, "versions of a") {
			return fmt.Errorf("b: state %q: %q", st.State, st.LastError)
		}
		return nil
	})
	sameContent(t, "c takes a's files", a, c)
	if _, err := os.Stat(b.path("old.conf")); err == nil {
		t.Fatal("b took a's file although its checks fail")
	}
	if err := os.WriteFile(filepath.Join(filepath.Dir(b.tree), "fixed"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	fix(b)
	sameContent(t, "b takes a's files once its check passes", a, b, c)
	eventually(t, waitLimit, "b's status is good", func() error {
		if st, _ := b.jobStatus("conf"); st.State != "good" || st.LastError != "" {
			return fmt.Errorf("b: state %q: %q", st.State, st.LastError)
		}
		return nil
	})
	for name, cnt := range meshCounts(t, a, b, c) {
		if cnt[1] != 0 {
			t.Errorf("%s records %d conflicts: a version was rejected for b's broken check", name, cnt[1])
		}
	}
}

// TestMeshChecksFixedLater: the check is fixed; b's next run of its
// checks (a short backoff) passes and b takes the waiting version.
func TestMeshChecksFixedLater(t *testing.T) {
	t.Parallel()
	checksFixedLater(t, 10*time.Millisecond, func(*tnode) {})
}

// TestMeshChecksFixedReload: the check is fixed and the configuration
// reloaded: b runs its checks at once (its backoff is an hour) and takes
// the waiting version.
func TestMeshChecksFixedReload(t *testing.T) {
	t.Parallel()
	checksFixedLater(t, time.Hour, func(b *tnode) { b.reload(t) })
}

// TestPushChecksFailEverywhere: a push target whose check fails whatever
// the content tries each version of the source once, rolls it back and
// says so; the source records the rejection. Nothing loops: across a
// further exchange (a change of a second job that reaches the target) the
// number of generations on both stays the same, one per version.
func TestPushChecksFailEverywhere(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	a, b := h.pair("")
	b.Jobs[0].Extra = "check = \"false\"\n"
	other := tjob{Name: "other", Path: filepath.Join(filepath.Dir(a.tree), "other"), Source: "a", Targets: []string{"b"}}
	a.Jobs = append(a.Jobs, other)
	other.Path = filepath.Join(filepath.Dir(b.tree), "other")
	b.Jobs = append(b.Jobs, other)
	for _, n := range []*tnode{a, b} {
		if err := os.MkdirAll(filepath.Join(filepath.Dir(n.tree), "other"), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	a.write("x.conf", "one\n", 0o644)
	a.start()
	b.start()
	bad := func(n *tnode) (gens, bad int) {
		gs, err := n.a().Store().Generations("conf")
		if err != nil {
			t.Fatal(err)
		}
		for _, g := range gs {
			if g.State == "bad" {
				bad++
			}
		}
		return len(gs), bad
	}
	rejected := func(what string, want int) {
		eventually(t, waitLimit, what, func() error {
			if _, nb := bad(b); nb < want {
				return fmt.Errorf("b has %d bad generations", nb)
			}
			if st, _ := a.jobStatus("conf"); !strings.Contains(st.LastError, "target b") {
				return fmt.Errorf("a: state %q: %q", st.State, st.LastError)
			}
			return nil
		})
	}
	rejected("b rolls back a's first version", 1)
	a.replace("x.conf", []byte("two\n"), 0o644)
	rejected("b rolls back a's second version", 2)
	ga, _ := bad(a)
	gb, nb := bad(b)
	if nb != 2 || gb != 2 || ga > 3 {
		t.Errorf("a: %d generations; b: %d generations, %d bad; want one per version of a's", ga, gb, nb)
	}
	os.WriteFile(filepath.Join(filepath.Dir(a.tree), "other", "o.conf"), []byte("o\n"), 0o644)
	eventually(t, waitLimit, "the other job's change reaches b", func() error {
		_, err := os.Stat(filepath.Join(filepath.Dir(b.tree), "other", "o.conf"))
		return err
	})
	if ga2, _ := bad(a); ga2 != ga {
		t.Errorf("a's generations: %d, then %d", ga, ga2)
	}
	if gb2, nb2 := bad(b); gb2 != gb || nb2 != nb {
		t.Errorf("b's generations: %d (%d bad), then %d (%d bad)", gb, nb, gb2, nb2)
	}
	if _, err := os.Stat(b.path("x.conf")); err == nil {
		t.Errorf("b holds x.conf although its check fails on everything")
	}
}

// TestMeshChecksFixedSyncNow: the check is fixed and the admin asks for a
// sync: b runs its checks at once (its backoff is an hour) and takes the
// waiting version.
func TestMeshChecksFixedSyncNow(t *testing.T) {
	t.Parallel()
	checksFixedLater(t, time.Hour, func(b *tnode) {
		if err := b.a().SyncNow(context.Background(), "conf"); err != nil {
			t.Fatal(err)
		}
	})
}

// TestPushChecksFixedReload: a push target whose check fails whatever the
// content (a script it runs is broken) rolls the source's version back,
// and, since the check fails on the content put back too, does not
// remember that version as bad: once the admin fixed the script and
// reloaded the configuration (what SIGHUP does), the target asks the
// source again and takes it. Before, the version stayed known-bad there
// until the source made a new one.
func TestPushChecksFixedReload(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	a, b := h.pair("")
	script := filepath.Join(h.base, "b-check.sh")
	check := func(exit int) {
		t.Helper()
		if err := os.WriteFile(script, fmt.Appendf(nil, "#!/bin/sh\nexit %d\n", exit), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	check(0)
	b.Jobs[0].Extra = fmt.Sprintf("check = %q\n", script)
	a.write("x.conf", "one\n", 0o644)
	a.start()
	b.start()
	converged(t, "the first version on b", a, b)
	eventually(t, waitLimit, "b's first generation passed its check", func() error {
		if st, _ := b.jobStatus("conf"); st.State != "good" || st.Generation == 0 {
			return fmt.Errorf("b: state %q, generation %d", st.State, st.Generation)
		}
		return nil
	})
	check(1) // broken on b, whatever the content
	a.replace("x.conf", []byte("two\n"), 0o644)
	eventually(t, waitLimit, "b rolls a's version back and says whose fault it is", func() error {
		st, _ := b.jobStatus("conf")
		if !strings.Contains(st.LastError, "fail on the content put back too") {
			return fmt.Errorf("b: state %q: %q", st.State, st.LastError)
		}
		return nil
	})
	if got := string(b.read("x.conf")); got != "one\n" {
		t.Fatalf("b holds %q after rolling back, want the first version", got)
	}
	if err := b.a().Healthy(context.Background()); err == nil || !strings.Contains(err.Error(), "fail on the content put back too") {
		t.Fatalf("b's health while its check fails whatever the content: %v, want unhealthy saying why", err)
	}
	check(0)
	b.reload(t)
	converged(t, "a's second version on b once its check is fixed", a, b)
	eventually(t, waitLimit, "b healthy again", func() error { return b.a().Healthy(context.Background()) })
}

// TestPushChecksFixedReloadFirst: the same for a target's first
// generation (a new target whose check is broken from the start): the
// checks run on the tree as it was before it too, fail there, and the
// version is taken once the check is fixed and the configuration reloaded.
func TestPushChecksFixedReloadFirst(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	a, b := h.pair("")
	script := filepath.Join(h.base, "b-check.sh")
	if err := os.WriteFile(script, []byte("#!/bin/sh\nexit 1\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	b.Jobs[0].Extra = fmt.Sprintf("check = %q\n", script)
	a.write("x.conf", "one\n", 0o644)
	a.start()
	b.start()
	eventually(t, waitLimit, "b rolls a's first version back and says whose fault it is", func() error {
		if st, _ := b.jobStatus("conf"); st.State != stateChecksFailing {
			return fmt.Errorf("b: state %q: %q", st.State, st.LastError)
		}
		return nil
	})
	if _, err := os.Stat(b.path("x.conf")); err == nil {
		t.Fatal("b holds x.conf although its check failed")
	}
	if err := os.WriteFile(script, []byte("#!/bin/sh\nexit 0\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	b.reload(t)
	converged(t, "a's version on b once its check is fixed", a, b)
}
