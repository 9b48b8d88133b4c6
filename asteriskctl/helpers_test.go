package asteriskctl

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"pbxsync/internal/amisim"
	"pbxsync/internal/testwait"
)

const testSecret = "Tr0ub4dor-s3cret-xyzzy"

// syncBuffer is a goroutine-safe log sink.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func startSim(t *testing.T, cfg amisim.Config) *amisim.Server {
	t.Helper()
	if cfg.Secret == "" {
		cfg.Secret = testSecret
	}
	if cfg.Username == "" {
		cfg.Username = "pbxsync"
	}
	sim, err := amisim.Start(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), testwait.Limit())
		defer cancel()
		if err := sim.Close(ctx); err != nil {
			t.Errorf("sim close: %v", err)
		}
	})
	return sim
}

// testConfig returns a session config for sim with fast timings and the
// secret written to a file.
func testConfig(t *testing.T, sim *amisim.Server, secret string) (Config, *syncBuffer) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "ami.secret")
	if err := os.WriteFile(path, []byte(secret+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	logs := &syncBuffer{}
	return Config{
		Addr:          sim.Addr(),
		Username:      "pbxsync",
		SecretFile:    path,
		DialTimeout:   2 * time.Second,
		ActionTimeout: 5 * time.Second,
		MinBackoff:    20 * time.Millisecond,
		MaxBackoff:    200 * time.Millisecond,
		ReloadBackoff: 20 * time.Millisecond,
		Logger:        slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
	}, logs
}

func openSession(t *testing.T, cfg Config) *Session {
	t.Helper()
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), testwait.Limit())
		defer cancel()
		if err := s.Close(ctx); err != nil {
			t.Errorf("session close: %v", err)
		}
	})
	return s
}

// connected returns a logged-in session to sim.
func connected(t *testing.T, sim *amisim.Server) (*Session, *syncBuffer) {
	t.Helper()
	cfg, logs := testConfig(t, sim, testSecret)
	s := openSession(t, cfg)
	if err := s.WaitConnected(testwait.Context(t)); err != nil {
		t.Fatal(err)
	}
	return s, logs
}

// ctxT is a context with a deadline d that is part of what a test checks
// (an action timeout); a wait that only bounds a hang uses
// testwait.Context.
func ctxT(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// eventually waits until cond holds (bounded by testwait.Limit).
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	testwait.Eventually(t, what, func() error {
		if !cond() {
			return errors.New("not yet")
		}
		return nil
	})
}
