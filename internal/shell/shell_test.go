package shell

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestRun(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "extensions.conf"), []byte("BROKEN\n"), 0o644)
	ctx := context.Background()
	if _, err := Run(ctx, dir, `test "$PBXSYNC_JOB" = conf && test -f extensions.conf`, []string{"PBXSYNC_JOB=conf"}, time.Second); err != nil {
		t.Fatalf("env or dir not applied: %v", err)
	}
	_, err := Run(ctx, dir, "echo the dialplan is broken >&2; exit 3", nil, time.Second)
	if err == nil || !strings.Contains(err.Error(), "exit status 3") || !strings.Contains(err.Error(), "the dialplan is broken") {
		t.Fatalf("failure not explained: %v", err)
	}
	start := time.Now()
	_, err = Run(ctx, dir, "sleep 30 & sleep 30", nil, 200*time.Millisecond)
	if !errors.Is(err, ErrTimeout) {
		t.Fatalf("want ErrTimeout, got %v", err)
	}
	if time.Since(start) >= 25*time.Second { // the sleeps take 30 s; the timeout is 200 ms
		t.Fatalf("timeout did not kill the process group (took %s)", time.Since(start))
	}
}

func TestTailBuffer(t *testing.T) {
	b := &tailBuffer{max: 5}
	b.Write([]byte("abc"))
	b.Write([]byte("defg"))
	if b.String() != "cdefg" {
		t.Fatalf("got %q", b.String())
	}
	b.Write([]byte("0123456789"))
	if b.String() != "56789" {
		t.Fatalf("got %q", b.String())
	}
}
