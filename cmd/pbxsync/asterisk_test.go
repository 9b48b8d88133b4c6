package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"pbxsync/internal/amisim"
	"pbxsync/internal/config"
	"pbxsync/internal/identity"
	"pbxsync/internal/testwait"
)

// astLogBuffer is a goroutine-safe log sink.
type astLogBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *astLogBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *astLogBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestRunWithAsterisk: with [asterisk], `pbxsync run` logs in to AMI,
// /healthz follows whether Asterisk answers, and the secret is never
// logged.
func TestRunWithAsterisk(t *testing.T) {
	t.Parallel()
	const secret = "run-test-secret-0b9e41"
	dir := t.TempDir()
	tree := filepath.Join(dir, "tree")
	if err := os.MkdirAll(tree, 0o755); err != nil {
		t.Fatal(err)
	}
	sim, err := amisim.Start(amisim.Config{Secret: secret, ConfigDir: tree, LogPath: filepath.Join(dir, "messages")})
	if err != nil {
		t.Fatal(err)
	}
	defer sim.Close(context.Background())
	secretFile := filepath.Join(dir, "ami.secret")
	if err := os.WriteFile(secretFile, []byte(secret+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	udp, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	listen := udp.LocalAddr().String()
	udp.Close()
	tcp, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	httpAddr := tcp.Addr().String()
	tcp.Close()
	peer := identity.IDFromPublicKey(make([]byte, 32))
	text := fmt.Sprintf("[node]\nname = \"a\"\nlisten = %q\ndata_dir = %q\nhttp = %q\n\n[asterisk]\nami = %q\nusername = \"admin\"\nsecret_file = %q\nlog = %q\n\n[[peer]]\nname = \"b\"\naddress = \"127.0.0.1:9\"\nid = %q\n\n[[job]]\nname = \"conf\"\npath = %q\nsource = \"a\"\ntargets = [\"b\"]\n",
		listen, filepath.Join(dir, "data"), httpAddr, sim.Addr(), secretFile, filepath.Join(dir, "messages"), peer.String(), tree)
	cfg, err := config.Parse(filepath.Join(dir, "pbxsync.toml"), []byte(text))
	if err != nil {
		t.Fatalf("%v\n%s", err, text)
	}
	var logBuf astLogBuffer
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- runAgent(ctx, cfg, newLogger(&logBuf, "debug", false), nil, nil) }()
	defer func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("runAgent: %v", err)
			}
		case <-time.After(testwait.Limit()):
			t.Error("runAgent did not return")
		}
		if strings.Contains(logBuf.String(), secret) {
			t.Error("the AMI secret is in the log")
		}
		if t.Failed() {
			t.Logf("log:\n%s", logBuf.String())
		}
	}()

	healthz := func() (int, string) {
		c := http.Client{Timeout: 5 * time.Second}
		resp, err := c.Get("http://" + httpAddr + "/healthz")
		if err != nil {
			return 0, err.Error()
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	waitHealth := func(what string, want int, body string) {
		t.Helper()
		var code int
		var got string
		for deadline := time.Now().Add(testwait.Limit()); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
			if code, got = healthz(); code == want && strings.Contains(got, body) {
				return
			}
		}
		t.Fatalf("%s: /healthz %d %q, want %d with %q", what, code, got, want, body)
	}
	waitHealth("Asterisk up", http.StatusOK, "ok")
	if n := sim.Count("Login"); n < 1 {
		t.Fatalf("%d logins", n)
	}
	if err := sim.Down(); err != nil {
		t.Fatal(err)
	}
	waitHealth("Asterisk down", http.StatusServiceUnavailable, "asterisk at "+sim.Addr())
	if err := sim.Up(); err != nil {
		t.Fatal(err)
	}
	waitHealth("Asterisk back", http.StatusOK, "ok")
}
