package syncer

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"pbxsync/internal/backup"
	"pbxsync/internal/config"
	"pbxsync/internal/store"
)

// failingChecks is an AfterApply that fails while fail is set.
type failingChecks struct{ fail bool }

func (c *failingChecks) AfterApply(ctx context.Context, job *config.Job, gen uint64, changed []string) error {
	if c.fail {
		return errors.New("check core show version failed (test)")
	}
	return nil
}

// restoreFile restores the archive at path as pbxsync restore does: its
// bytes are streamed to the agent.
func restoreFile(ctx context.Context, a *Agent, job, path string) (uint64, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	return a.Restore(ctx, job, path, f)
}

// backupOf writes the newest good generation of job conf on n to a file.
func backupOf(t *testing.T, n *tnode) string {
	t.Helper()
	out := filepath.Join(t.TempDir(), "conf.tar.zst")
	cfg, _ := n.a().cfgSnapshot().JobByName("conf")
	if _, err := WriteBackup(context.Background(), n.a().Store(), *cfg, n.name, 0, out, nil); err != nil {
		t.Fatalf("backup: %v", err)
	}
	return out
}

// TestRestoreRollsOut: a backup restored on a push source becomes a new
// generation whose tree is the backed-up one, on the source and the
// target; a damaged archive and one of another job are refused with the
// tree untouched; a push target refuses.
func TestRestoreRollsOut(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	a, b := h.pair("")
	a.write("extensions.conf", seedExtensions, 0o644)
	a.write("sounds/moh.wav", strings.Repeat("RIFF", 30000), 0o640)
	a.start()
	b.start()
	converged(t, "initial sync", a, b)
	waitGood(t, b, "conf")
	archive := backupOf(t, a)
	want, err := snapshot(a.tree)
	if err != nil {
		t.Fatal(err)
	}

	a.write("extensions.conf", "[broken\n", 0o644)
	if err := os.Remove(a.path("sounds/moh.wav")); err != nil {
		t.Fatal(err)
	}
	a.write("new.conf", "added after the backup\n", 0o644)
	converged(t, "the change after the backup", a, b)
	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	defer cancel()

	bad := filepath.Join(t.TempDir(), "bad.tar.zst")
	raw, _ := os.ReadFile(archive)
	raw[len(raw)/2] ^= 0xff
	os.WriteFile(bad, raw, 0o600)
	before := a.read("extensions.conf")
	if _, err := restoreFile(ctx, a.a(), "conf", bad); err == nil || !strings.Contains(err.Error(), "damaged") {
		t.Fatalf("restore of a damaged archive: %v", err)
	}
	if !bytes.Equal(a.read("extensions.conf"), before) {
		t.Fatal("a refused restore changed the tree")
	}
	if _, err := restoreFile(ctx, b.a(), "conf", archive); err == nil || !strings.Contains(err.Error(), "restore the archive on a") {
		t.Fatalf("restore on the push target: %v", err)
	}

	js, _ := a.jobStatus("conf")
	gen, err := restoreFile(ctx, a.a(), "conf", archive)
	if err != nil {
		t.Fatalf("restore: %v", err)
	}
	if gen <= js.Generation {
		t.Fatalf("restore gave generation %d; the newest was %d", gen, js.Generation)
	}
	got, err := snapshot(a.tree)
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("source tree after restore is not the backed-up one")
	}
	converged(t, "the restore reaches the target", a, b)
	g, err := a.a().Store().Generation("conf", gen)
	if err != nil || g.State != store.StateGood || !strings.Contains(g.Reason, "restored from backup") {
		t.Fatalf("generation %d: %v %+v", gen, err, g)
	}
}

// TestRestoreFailingCheckPutsBack: when the source's checks fail on the
// restored tree, the tree before is put back and no generation recorded.
func TestRestoreFailingCheckPutsBack(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	a, b := h.pair("")
	checks := &failingChecks{}
	a.tune = func(o *Options) { o.AfterApply = checks }
	a.write("extensions.conf", seedExtensions, 0o644)
	a.start()
	b.start()
	converged(t, "initial sync", a, b)
	archive := backupOf(t, a)
	a.write("extensions.conf", seedExtensions+"exten => 200,1,Answer()\n", 0o644)
	converged(t, "a later change", a, b)
	before, _ := snapshot(a.tree)
	js, _ := a.jobStatus("conf")
	checks.fail = true // the job loop reads it; set before the request is posted
	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	defer cancel()
	_, err := restoreFile(ctx, a.a(), "conf", archive)
	if err == nil || !strings.Contains(err.Error(), "failed its checks") {
		t.Fatalf("restore with failing checks: %v", err)
	}
	after, _ := snapshot(a.tree)
	if fmt.Sprint(after) != fmt.Sprint(before) {
		t.Fatal("the tree before the restore was not put back")
	}
	if n, _ := a.a().Store().NextGeneration("conf"); n != js.Generation+1 {
		t.Fatalf("a failed restore recorded a generation: next is %d, newest was %d", n, js.Generation)
	}
	converged(t, "the target keeps the tree", a, b)
}

// TestRestoreOtherJobRefused: an archive of another job changes nothing.
func TestRestoreOtherJobRefused(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	a, b := h.pair("")
	other := tjob{Name: "sounds", Path: filepath.Join(h.base, "a", "sounds"), Source: "a", Targets: []string{"b"}}
	os.MkdirAll(other.Path, 0o755)
	os.WriteFile(filepath.Join(other.Path, "x.wav"), []byte("sound"), 0o644)
	a.Jobs = append(a.Jobs, other)
	a.write("extensions.conf", seedExtensions, 0o644)
	a.start()
	waitGood(t, a, "sounds")
	out := filepath.Join(t.TempDir(), "sounds.tar.zst")
	cfg, _ := a.a().cfgSnapshot().JobByName("sounds")
	if _, err := WriteBackup(context.Background(), a.a().Store(), *cfg, "a", 0, out, nil); err != nil {
		t.Fatal(err)
	}
	_ = b
	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	defer cancel()
	if _, err := restoreFile(ctx, a.a(), "conf", out); err == nil || !strings.Contains(err.Error(), `holds job "sounds"`) {
		t.Fatalf("restore of another job's archive: %v", err)
	}
	if string(a.read("extensions.conf")) != seedExtensions {
		t.Fatal("the tree changed")
	}
}

// TestScheduledBackups: with backup = { every = "24h", keep = 2 } the
// agent writes an archive of the newest good generation when the newest
// in the directory is a day old, keeps two, and leaves other files alone.
// The clock is a parameter: no sleeping.
func TestScheduledBackups(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	dir := filepath.Join(h.base, "backups")
	a, b := h.pair(fmt.Sprintf("backup = { every = \"24h\", keep = 2, dir = %q }\n", dir))
	b.Jobs[0].Extra = ""
	a.write("extensions.conf", seedExtensions, 0o644)
	a.start()
	waitGood(t, a, "conf")
	os.MkdirAll(dir, 0o700)
	os.WriteFile(filepath.Join(dir, "notes.txt"), []byte("mine"), 0o600)
	list := func() []string {
		ents, _ := os.ReadDir(dir)
		var out []string
		for _, e := range ents {
			out = append(out, e.Name())
		}
		return out
	}
	ctx := context.Background()
	t0 := time.Date(2030, 1, 1, 2, 0, 0, 0, time.UTC)
	js, _ := a.jobStatus("conf")
	a.a().scheduledBackups(ctx, t0)
	first := fmt.Sprintf("conf-20300101T020000Z-g%d.tar.zst", js.Generation)
	if got := fmt.Sprint(list()); got != fmt.Sprint([]string{first, "notes.txt"}) {
		t.Fatalf("after the first run: %s", got)
	}
	m, err := backup.ReadFile(filepath.Join(dir, first), nil, nil)
	if err != nil || m.Generation != js.Generation || m.Job != "conf" {
		t.Fatalf("the scheduled archive: %v %+v", err, m)
	}
	a.a().scheduledBackups(ctx, t0.Add(23*time.Hour))
	if len(list()) != 2 {
		t.Fatalf("a backup before every passed: %v", list())
	}
	a.replace("extensions.conf", []byte(seedExtensions+"exten => 7,1,Answer()\n"), 0o644)
	var g2 uint64
	eventually(t, waitLimit, "the change recorded", func() error {
		if s, _ := a.jobStatus("conf"); s.Generation == js.Generation {
			return errors.New("not yet")
		} else {
			g2 = s.Generation
		}
		return nil
	})
	a.a().scheduledBackups(ctx, t0.Add(24*time.Hour))
	a.a().scheduledBackups(ctx, t0.Add(48*time.Hour))
	got := list()
	want := []string{fmt.Sprintf("conf-20300102T020000Z-g%d.tar.zst", g2), fmt.Sprintf("conf-20300103T020000Z-g%d.tar.zst", g2), "notes.txt"}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("after three days with keep 2: %v", got)
	}
}

// TestRestoreKeepsToTheJobsFilters: a path of the archive that the job's
// filters exclude now is not written.
func TestRestoreKeepsToTheJobsFilters(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	a, b := h.pair("")
	a.write("extensions.conf", seedExtensions, 0o644)
	a.write("notes.txt", "kept out later\n", 0o644)
	a.start()
	b.start()
	converged(t, "initial sync", a, b)
	archive := backupOf(t, a)
	a.stop()
	b.stop()
	os.Remove(a.path("notes.txt"))
	for _, n := range []*tnode{a, b} {
		n.Jobs[0].Extra = "exclude = [\"*.txt\"]\n"
	}
	a.start()
	b.start()
	waitGood(t, a, "conf")
	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	defer cancel()
	if _, err := restoreFile(ctx, a.a(), "conf", archive); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(a.path("notes.txt")); !os.IsNotExist(err) {
		t.Fatalf("an excluded path of the archive was restored: %v", err)
	}
	if string(a.read("extensions.conf")) != seedExtensions {
		t.Fatal("extensions.conf not restored")
	}
}
