package main

import (
	"context"
	"crypto/tls"
	"encoding/binary"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/klauspost/compress/zstd"
	"github.com/quic-go/quic-go"

	"pbxsync/internal/identity"
	"pbxsync/internal/wire"
)

// bomb is a frame of type t whose zstd payload (a few KB) decodes to about
// size bytes: prefix, then unit over and over.
func bomb(t *testing.T, typ wire.Type, prefix, unit string, size int) []byte {
	t.Helper()
	raw := make([]byte, 0, size+len(unit)) // no regrowth: copying 64 MiB is slow under -race
	raw = append(raw, prefix...)
	for len(raw) < size {
		raw = append(raw, unit...)
	}
	// SpeedDefault, not SpeedBestCompression: the payload is still a few KB
	// (7 KB against 6 KB) and takes 0.3 s under -race instead of 27 s.
	enc, err := zstd.NewWriter(nil, zstd.WithEncoderLevel(zstd.SpeedDefault), zstd.WithWindowSize(1<<20))
	if err != nil {
		t.Fatal(err)
	}
	defer enc.Close()
	payload := enc.EncodeAll(raw, nil)
	out := make([]byte, wire.HeaderSize, wire.HeaderSize+len(payload))
	out[0], out[1], out[2] = wire.Version, byte(typ), 1
	binary.BigEndian.PutUint32(out[4:], uint32(len(payload)))
	return append(out, payload...)
}

// procKB reads a "Name:   N kB" line of /proc/PID/status.
func procKB(t *testing.T, pid int, name string) int {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == name+":" {
			n, err := strconv.Atoi(f[1])
			if err != nil {
				t.Fatal(err)
			}
			return n
		}
	}
	t.Fatalf("no %s in /proc/%d/status", name, pid)
	return 0
}

// hostileConn connects to addr as evil and exchanges Hellos.
func hostileConn(ctx context.Context, evil *identity.Identity, addr string) (*quic.Conn, *quic.Stream, error) {
	conf := &tls.Config{MinVersion: tls.VersionTLS13, Certificates: []tls.Certificate{evil.Certificate},
		NextProtos: []string{"pbxsync/1"}, ServerName: "pbxsync", InsecureSkipVerify: true}
	qc, err := quic.DialAddr(ctx, addr, conf, &quic.Config{KeepAlivePeriod: 200 * time.Millisecond})
	if err != nil {
		return nil, nil, err
	}
	ctrl, err := qc.OpenStreamSync(ctx)
	if err != nil {
		qc.CloseWithError(0, "")
		return nil, nil, err
	}
	codec, err := wire.NewCodec()
	if err != nil {
		return nil, nil, err
	}
	defer codec.Close()
	if err := codec.Write(ctrl, &wire.Hello{Node: "evil"}); err != nil {
		qc.CloseWithError(0, "")
		return nil, nil, err
	}
	ctrl.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := codec.Read(ctrl); err != nil {
		qc.CloseWithError(0, "")
		return nil, nil, fmt.Errorf("no Hello back: %w", err)
	}
	ctrl.SetReadDeadline(time.Time{})
	go func() { // it reads what it is sent, so only its own frames count
		buf := make([]byte, 32<<10)
		for {
			if _, err := ctrl.Read(buf); err != nil {
				return
			}
		}
	}()
	return qc, ctrl, nil
}

// TestHostilePeerMemoryBounded runs the agent as a child process with a
// pinned peer "evil" (a target of its job, so it may send results and
// content requests) that sends nothing but maximal frames: zstd bombs of a
// few KB that decode to 64 MiB announcements (for the job it is not the
// source of, and for jobs that do not exist), oversize results and states,
// and content requests on many streams. The agent's peak RSS (VmHWM, reset
// after start-up) stays within 2x its idle RSS.
func TestHostilePeerMemoryBounded(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	dataDir := filepath.Join(dir, "data")
	tree := filepath.Join(dir, "tree")
	os.MkdirAll(tree, 0o755)
	os.WriteFile(filepath.Join(tree, "x.conf"), []byte("x\n"), 0o644)
	evil, err := identity.LoadOrCreate(filepath.Join(dir, "evil"))
	if err != nil {
		t.Fatal(err)
	}
	port := freeUDPPort(t)
	cfg := fmt.Sprintf(`[node]
name = "n1"
listen = "127.0.0.1:%d"
data_dir = %q

[[peer]]
name = "evil"
address = "127.0.0.1:%d"
id = %q

[[job]]
name = "conf"
path = %q
source = "n1"
targets = ["evil"]
`, port, dataDir, freeUDPPort(t), evil.ID.String(), tree)
	cfgPath := filepath.Join(dir, "pbxsync.toml")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestPbxsyncHelperProcess$", "--", "run", "--config", cfgPath)
	cmd.Env = append(os.Environ(), helperEnv+"=1")
	log := &syncBuffer{}
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-exited
		if t.Failed() {
			t.Logf("agent log:\n%s", log.String())
		}
	})
	waitLog(t, log, "agent started", 60*time.Second)
	addr := fmt.Sprintf("127.0.0.1:%d", port)

	bombs := [][]byte{
		bomb(t, wire.TypeAnnounce, `{"job":"conf","version":1,"origin":"evil","items":[`, `{"p":"a","k":2,"m":0,"t":0},`, wire.MaxDecoded-1024),
		bomb(t, wire.TypeAnnounce, `{"job":"nosuchjob","version":1,"origin":"evil","items":[`, `{"p":"a","k":2,"m":0,"t":0},`, wire.MaxDecoded-1024),
		bomb(t, wire.TypeRowsAnnounce, `{"job":"conf","version":1,"origin":"evil","schema":[`, `{"table":"t","columns":[],"key":[]},`, wire.MaxDecoded-1024),
	}
	fatal := [][]byte{ // allowed kinds over their limit: the agent drops the connection
		bomb(t, wire.TypeResult, `{"job":"conf","version":1,"state":"bad","reason":"`, "xxxxxxxxxxxxxxxx", wire.MaxDecoded-1024),
		bomb(t, wire.TypeState, `{"node":"evil","jobs":[`, `{"job":"j","generation":1,"version":1,"state":"good"},`, wire.MaxDecoded-1024),
	}
	getBomb := bomb(t, wire.TypeGet, `{"job":"conf","path":"`, "a/", wire.MaxDecoded-1024)

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	qc, ctrl, err := hostileConn(ctx, evil, addr)
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(time.Second) // let the agent settle with the peer connected
	idle := procKB(t, cmd.Process.Pid, "VmRSS")
	if err := os.WriteFile(fmt.Sprintf("/proc/%d/clear_refs", cmd.Process.Pid), []byte("5"), 0); err != nil {
		t.Fatalf("reset the peak RSS: %v", err)
	}

	sent := 0
	for round := 0; round < 20; round++ {
		for _, b := range bombs {
			if _, err := ctrl.Write(b); err != nil {
				t.Fatalf("round %d: the agent closed the connection on a refused frame: %v", round, err)
			}
			sent++
		}
		for k := 0; k < 8; k++ { // content requests that decode past their limit
			if s, err := qc.OpenStreamSync(ctx); err == nil {
				s.Write(getBomb)
				s.Close()
				sent++
			}
		}
	}
	// a frame after the refused ones still works: the connection is alive
	codec, _ := wire.NewCodec()
	defer codec.Close()
	if err := codec.Write(ctrl, &wire.Ping{Seq: 1}); err != nil {
		t.Fatal(err)
	}
	// allowed kinds over their limit, each on a fresh connection
	for round := 0; round < 10; round++ {
		for _, b := range fatal {
			qc2, ctrl2, err := hostileConn(ctx, evil, addr)
			if err != nil {
				t.Fatalf("reconnect: %v", err)
			}
			ctrl2.Write(b)
			sent++
			select {
			case <-qc2.Context().Done():
			case <-time.After(30 * time.Second):
				t.Fatal("the agent kept a connection that sent an oversize frame")
			}
		}
	}
	waitLog(t, log, "refusing a message from peer unread", 10*time.Second)
	time.Sleep(time.Second)
	peak := procKB(t, cmd.Process.Pid, "VmHWM")
	t.Logf("agent RSS idle %d KiB, peak under %d hostile frames (each a few KB decoding to 64 MiB) %d KiB (%.2fx)", idle, sent, peak, float64(peak)/float64(idle))
	if peak > 2*idle {
		t.Fatalf("peak RSS %d KiB > 2x idle %d KiB", peak, idle)
	}
	if n := strings.Count(log.String(), "refusing a message from peer unread"); n > 5 {
		t.Errorf("%d log lines for refused messages of one peer; want them rate-limited", n)
	}
}
