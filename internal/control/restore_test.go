package control

import (
	"bytes"
	"context"
	"crypto/sha256"
	"io"
	"log/slog"
	"math/rand/v2"
	"path/filepath"
	"testing"
)

// restorer is fake that also restores: it reads the archive to its end.
type restorer struct {
	fake
	got chan []byte
}

func (r restorer) Restore(ctx context.Context, job, name string, archive io.Reader) (uint64, error) {
	b, err := io.ReadAll(archive)
	r.got <- b
	return uint64(len(b)), err
}

// TestRestoreStreamsTheArchive: the archive's bytes follow the request on
// the socket, all of them and nothing more (the request's decoder reads
// ahead; what it buffered is part of the archive), and the agent sees the
// end at the client's half-close.
func TestRestoreStreamsTheArchive(t *testing.T) {
	path := filepath.Join(t.TempDir(), SocketName)
	r := restorer{got: make(chan []byte, 1)}
	s, err := Listen(path, r, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go s.Serve(ctx)
	body := make([]byte, 3<<20+17)
	rand.NewChaCha8([32]byte{1}).Read(body)
	resp, err := CallWith(ctx, path, Request{Cmd: "restore", Job: "conf", From: "/tmp/x.tar.zst"}, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	got := <-r.got
	if resp.Generation != uint64(len(body)) || sha256.Sum256(got) != sha256.Sum256(body) {
		t.Fatalf("the agent read %d bytes (answered %d), want the %d sent", len(got), resp.Generation, len(body))
	}
	// an agent that cannot restore says so
	s2path := filepath.Join(t.TempDir(), SocketName)
	s2, err := Listen(s2path, fake{}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	go s2.Serve(ctx)
	if _, err := CallWith(ctx, s2path, Request{Cmd: "restore", Job: "conf"}, bytes.NewReader(body[:10])); err == nil {
		t.Fatal("an agent without Restore accepted a restore")
	}
}
