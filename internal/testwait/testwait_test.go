package testwait

import (
	"errors"
	"testing"
	"time"
)

func TestLimitScales(t *testing.T) {
	t.Setenv(ScaleEnv, "")
	want := base
	if Race() {
		want *= 2
	}
	if got := Limit(); got != want {
		t.Fatalf("Limit() = %s, want %s", got, want)
	}
	t.Setenv(ScaleEnv, "0.5")
	if got := Limit(); got != want/2 {
		t.Fatalf("Limit() with scale 0.5 = %s, want %s", got, want/2)
	}
	for _, bad := range []string{"-1", "0", "fast"} {
		t.Setenv(ScaleEnv, bad)
		if got := Limit(); got != want {
			t.Fatalf("Limit() with scale %q = %s, want the unscaled %s", bad, got, want)
		}
	}
}

func TestEventuallyWaitsForTheState(t *testing.T) {
	start := time.Now()
	n := 0
	Eventually(t, "the third poll", func() error {
		if n++; n < 3 {
			return errors.New("not yet")
		}
		return nil
	})
	if n != 3 {
		t.Fatalf("polled %d times, want 3", n)
	}
	if d := time.Since(start); d >= Limit() {
		t.Fatalf("took %s", d)
	}
	ch := make(chan int, 1)
	ch <- 7
	if got := Chan(t, "a value", ch); got != 7 {
		t.Fatalf("Chan = %d", got)
	}
	if Context(t).Err() != nil {
		t.Fatal("Context is already done")
	}
}
