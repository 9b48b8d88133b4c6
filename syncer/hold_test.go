package syncer

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestE2ETargetRollbackHold: on a push target a plain rollback is refused
// and names the source; rollback --hold restores the generation and holds
// it (the target answers the source's newer generations "held", also after
// a restart) until Resume, after which the target catches up.
func TestE2ETargetRollbackHold(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	a, b := h.pair("")
	a.write("x.conf", "v1\n", 0o644)
	a.start()
	b.start()
	converged(t, "initial sync", a, b)
	var g1 uint64
	eventually(t, waitLimit, "target reports its generation", func() error {
		js, _ := b.jobStatus("conf")
		if g1 = js.Generation; g1 == 0 || js.State != "good" {
			return fmt.Errorf("status %+v", js)
		}
		return nil
	})
	a.write("x.conf", "v2\n", 0o644)
	converged(t, "v2", a, b)

	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	defer cancel()
	_, err := b.a().Rollback(ctx, "conf", g1, false)
	if !errors.Is(err, ErrTargetRollback) || !strings.Contains(err.Error(), `of a,`) {
		t.Fatalf("plain rollback on a target: err = %v; want a refusal naming the source a", err)
	}
	if got := string(b.read("x.conf")); got != "v2\n" {
		t.Fatalf("a refused rollback changed the target: %q", got)
	}
	if _, err := b.a().Rollback(ctx, "conf", g1, true); err != nil {
		t.Fatalf("rollback --hold: %v", err)
	}
	if got := string(b.read("x.conf")); got != "v1\n" {
		t.Fatalf("after rollback --hold the target holds %q, want v1", got)
	}
	held := fmt.Sprintf("held by operator at %d", g1)
	// heldFor waits until the source knows that b answered its newest
	// generation "held", then checks that b still holds v1.
	heldFor := func(what string) {
		t.Helper()
		eventually(t, waitLimit, what, func() error {
			if js, _ := b.jobStatus("conf"); js.State != ResultHeld || js.Held != held {
				return fmt.Errorf("target status %q %q, want %q %q", js.State, js.Held, ResultHeld, held)
			}
			src, _ := a.jobStatus("conf")
			for _, ts := range src.Targets {
				if ts.Name == "b" && ts.State == ResultHeld && ts.Reason == held && ts.Version == src.Generation {
					return nil
				}
			}
			return fmt.Errorf("source generation %d, targets %+v", src.Generation, src.Targets)
		})
		if got := string(b.read("x.conf")); got != "v1\n" {
			t.Fatalf("%s: the held target holds %q, want v1", what, got)
		}
	}
	a.write("x.conf", "v3\n", 0o644)
	heldFor("v3 answered held")

	b.restart()
	a.write("x.conf", "v4\n", 0o644)
	heldFor("v4 answered held after a restart of the target")

	if err := b.a().Resume(ctx, "conf"); err != nil {
		t.Fatalf("resume: %v", err)
	}
	converged(t, "caught up after resume", a, b)
	if err := b.a().Resume(ctx, "conf"); err == nil || !strings.Contains(err.Error(), "not held") {
		t.Fatalf("second resume: err = %v, want 'not held'", err)
	}
	if _, err := a.a().Rollback(ctx, "conf", 0, true); err == nil {
		t.Fatal("rollback --hold on the source was accepted")
	}
}

// TestE2EHoldPutsBackReplacedSymlink: rollback --hold on a target to a
// generation older than the one that replaced a local symlink by the
// source's directory puts the link back.
func TestE2EHoldPutsBackReplacedSymlink(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	a, b := h.pair("")
	outside := filepath.Join(h.base, "outside")
	if err := os.MkdirAll(outside, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(outside, b.path("moh")); err != nil {
		t.Fatal(err)
	}
	a.write("x.conf", "v1\n", 0o644)
	a.start()
	b.start()
	converged(t, "initial sync", a, b)
	var g1 uint64
	eventually(t, waitLimit, "target reports its generation", func() error {
		js, _ := b.jobStatus("conf")
		if g1 = js.Generation; g1 == 0 || js.State != "good" {
			return fmt.Errorf("status %+v", js)
		}
		return nil
	})
	a.write("moh/default.wav", "music\n", 0o644)
	converged(t, "moh replaces b's link", a, b)
	if fi, err := os.Lstat(b.path("moh")); err != nil || !fi.IsDir() {
		t.Fatalf("b's moh is not a directory: %v %v", fi, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	defer cancel()
	if _, err := b.a().Rollback(ctx, "conf", g1, true); err != nil {
		t.Fatalf("rollback --hold: %v", err)
	}
	if got, err := os.Readlink(b.path("moh")); err != nil || got != outside {
		t.Fatalf("after rollback --hold moh -> %q (%v); want the link to %s back", got, err, outside)
	}
	if ents, err := os.ReadDir(outside); err != nil || len(ents) != 0 {
		t.Fatalf("the directory outside the root changed: %v %v", ents, err)
	}
}
