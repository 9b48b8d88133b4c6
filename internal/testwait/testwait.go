// Package testwait is the one place tests take the bound of a wait from.
//
// A test waits for an event or a state (a file arrives, a generation is
// good, a log line is written); the bound only keeps a hang from running
// until `go test -timeout`. It is therefore generous, longer under the race
// detector, and scalable: the CI machine has two cores and is often loaded
// by several test processes at once, and a wait that passes on an idle
// machine in 200 ms may take many seconds there.
//
// Limit is 60 s, doubled under -race, times PBXSYNC_TEST_WAIT_SCALE when
// that is set (a positive number, e.g. 0.1 to make a hanging test fail
// fast while debugging, or 3 on a very slow machine).
package testwait

import (
	"context"
	"os"
	"strconv"
	"testing"
	"time"
)

// base is the bound of one wait without the race detector.
const base = 60 * time.Second

// ScaleEnv names the environment variable that scales Limit.
const ScaleEnv = "PBXSYNC_TEST_WAIT_SCALE"

// Limit is how long a test may wait for something that should happen: it
// bounds a hang, it is not a latency target.
func Limit() time.Duration {
	d := base
	if raceEnabled {
		d *= 2
	}
	if s := os.Getenv(ScaleEnv); s != "" {
		if f, err := strconv.ParseFloat(s, 64); err == nil && f > 0 {
			d = time.Duration(float64(d) * f)
		}
	}
	return d
}

// Race reports whether the test binary was built with -race.
func Race() bool { return raceEnabled }

// Eventually polls cond every 10 ms until it returns nil, and fails tb
// with cond's last error when Limit passes first.
func Eventually(tb testing.TB, what string, cond func() error) {
	tb.Helper()
	limit := Limit()
	deadline := time.Now().Add(limit)
	for {
		err := cond()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			tb.Fatalf("%s: not after %s: %v", what, limit, err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// Context returns a context that ends after Limit or when tb ends.
func Context(tb testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), Limit())
	tb.Cleanup(cancel)
	return ctx
}

// Chan waits for a value from ch and fails tb when Limit passes first.
func Chan[T any](tb testing.TB, what string, ch <-chan T) T {
	tb.Helper()
	limit := Limit()
	select {
	case v := <-ch:
		return v
	case <-time.After(limit):
		tb.Fatalf("%s: not after %s", what, limit)
	}
	var zero T
	return zero
}
