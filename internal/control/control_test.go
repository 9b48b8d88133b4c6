package control

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"testing"
)

type fake struct{}

func (fake) Status() any { return map[string]string{"node": "a"} }
func (fake) Resume(ctx context.Context, job string) error {
	if job != "conf" {
		return errors.New("no job " + job)
	}
	return nil
}
func (fake) SyncNow(ctx context.Context, job string) error {
	if job != "conf" {
		return errors.New("no job " + job)
	}
	return nil
}
func (fake) Rollback(ctx context.Context, job string, to uint64, hold bool) (uint64, error) {
	if job != "conf" {
		return 0, errors.New("no job " + job)
	}
	return to + 1, nil
}

func TestCallAndMode(t *testing.T) {
	path := filepath.Join(t.TempDir(), SocketName)
	s, err := Listen(path, fake{}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go s.Serve(ctx)
	st, err := os.Stat(path)
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("socket mode: %v %v", st.Mode(), err)
	}
	if _, err := Listen(path, fake{}, slog.New(slog.DiscardHandler)); err == nil {
		t.Fatal("second agent on the same socket was allowed")
	}
	if ents, err := os.ReadDir(filepath.Dir(path)); err != nil || len(ents) != 1 || ents[0].Name() != SocketName {
		t.Fatalf("beside the socket: %v %v (the directory it was bound in is left)", ents, err)
	}
	resp, err := Call(ctx, path, Request{Cmd: "status"})
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]string
	json.Unmarshal(resp.Status, &m)
	if m["node"] != "a" {
		t.Fatalf("status %s", resp.Status)
	}
	if resp, err := Call(ctx, path, Request{Cmd: "rollback", Job: "conf", To: 4}); err != nil || resp.Generation != 5 {
		t.Fatalf("rollback: %v %v", resp, err)
	}
	if _, err := Call(ctx, path, Request{Cmd: "resume", Job: "conf"}); err != nil {
		t.Fatalf("resume: %v", err)
	}
	if _, err := Call(ctx, path, Request{Cmd: "resume", Job: "x"}); err == nil || err.Error() != "no job x" {
		t.Fatalf("resume error not passed on: %v", err)
	}
	if _, err := Call(ctx, path, Request{Cmd: "sync", Job: "conf"}); err != nil {
		t.Fatalf("sync: %v", err)
	}
	if _, err := Call(ctx, path, Request{Cmd: "sync", Job: "x"}); err == nil || err.Error() != "no job x" {
		t.Fatalf("sync error not passed on: %v", err)
	}
	if _, err := Call(ctx, path, Request{Cmd: "rollback", Job: "x"}); err == nil || err.Error() != "no job x" {
		t.Fatalf("rollback error not passed on: %v", err)
	}
	if _, err := Call(ctx, filepath.Join(t.TempDir(), "none.sock"), Request{Cmd: "status"}); !errors.Is(err, ErrNoAgent) {
		t.Fatalf("want ErrNoAgent, got %v", err)
	}
}

// TestStaleSocketReplaced: a socket left by a crashed agent (nobody
// answers on it) is replaced, and the new one answers.
func TestStaleSocketReplaced(t *testing.T) {
	path := filepath.Join(t.TempDir(), SocketName)
	old, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	old.(*net.UnixListener).SetUnlinkOnClose(false)
	old.Close()
	if _, err := os.Stat(path); err != nil {
		t.Fatalf("the stale socket is not there: %v", err)
	}
	s, err := Listen(path, fake{}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatalf("a stale socket was not replaced: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go s.Serve(ctx)
	if _, err := Call(ctx, path, Request{Cmd: "status"}); err != nil {
		t.Fatal(err)
	}
}
