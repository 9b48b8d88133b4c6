package main

import (
	"bufio"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math/big"
	"os"
	"os/exec"
	"strconv"
	"time"

	"github.com/quic-go/quic-go"
)

// quicFloorProto is the ALPN of the floor's connections.
const quicFloorProto = "benchscale-floor"

// quicFloor times n bytes over one stream of a quic-go connection on
// 127.0.0.1, both ends in this process, from memory to nothing, with no
// file read, hashed, stored or written (quicFloorApart puts the ends in
// two processes, as the agents are). The agents'
// transport is quic-go with its default flow control (remotemon), as
// here; the handshake is outside the timing.
func quicFloor(ctx context.Context, n int64) (time.Duration, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Minute) // bounds a hang
	defer cancel()
	cert, err := throwawayCert()
	if err != nil {
		return 0, err
	}
	ln, err := quic.ListenAddr("127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{cert}, NextProtos: []string{quicFloorProto}}, &quic.Config{})
	if err != nil {
		return 0, fmt.Errorf("quic floor: listen: %w", err)
	}
	defer ln.Close()
	type result struct {
		got int64
		err error
	}
	received := make(chan result, 1)
	go func() {
		got, err := receiveFloor(ctx, ln)
		received <- result{got, err}
	}()
	c, err := dialFloor(ctx, ln.Addr().String(), cert.Leaf)
	if err != nil {
		return 0, fmt.Errorf("quic floor: dial: %w", err)
	}
	defer c.CloseWithError(0, "")
	t0 := time.Now()
	if err := sendFloor(ctx, c, n); err != nil {
		return 0, fmt.Errorf("quic floor: %w", err)
	}
	var r result
	select {
	case r = <-received:
	case <-ctx.Done():
		return 0, fmt.Errorf("quic floor: %w", ctx.Err())
	}
	took := time.Since(t0)
	if r.err != nil && !errors.Is(r.err, io.EOF) {
		return 0, fmt.Errorf("quic floor: read: %w", r.err)
	}
	if r.got != n {
		return 0, fmt.Errorf("quic floor: received %d bytes of %d", r.got, n)
	}
	return took, nil
}

// throwawayCert is a self-signed certificate for localhost, made now.
func throwawayCert() (tls.Certificate, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		NotBefore:    time.Now().Add(-time.Minute),
		NotAfter:     time.Now().Add(time.Hour),
		DNSNames:     []string{"localhost"},
		KeyUsage:     x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IsCA:         true,

		BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return tls.Certificate{}, err
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		return tls.Certificate{}, err
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}, nil
}

// quicReceiverEnv, set in the environment of this program, makes it the
// receiving end of quicFloorApart (runQuicReceiver) instead of the
// benchmark.
const quicReceiverEnv = "PBXSYNC_BENCH_QUIC_RECEIVER"

// quicFloorApart is quicFloor with the receiving end in a process of its
// own (this program again, as runQuicReceiver), as the two agents are: the
// time from the first byte sent to the receiver's count of the last. On
// this machine it took 1.6-1.7× the one-process time for the mixed tree
// (2.64-2.76 s against 1.59-1.63 s for 577.9 MiB).
func quicFloorApart(ctx context.Context, n int64) (time.Duration, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Minute) // bounds a hang
	defer cancel()
	self, err := os.Executable()
	if err != nil {
		return 0, fmt.Errorf("quic floor apart: %w", err)
	}
	cmd := exec.CommandContext(ctx, self)
	cmd.Env = append(os.Environ(), quicReceiverEnv+"=1")
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		return 0, fmt.Errorf("quic floor apart: %w", err)
	}
	if err := cmd.Start(); err != nil {
		return 0, fmt.Errorf("quic floor apart: start the receiver: %w", err)
	}
	defer cmd.Wait()
	defer cmd.Process.Kill() // a receiver that did not finish
	lines := bufio.NewScanner(out)
	var addr, certHex string
	if !lines.Scan() {
		return 0, fmt.Errorf("quic floor apart: the receiver said nothing: %v", lines.Err())
	}
	if _, err := fmt.Sscan(lines.Text(), &addr, &certHex); err != nil {
		return 0, fmt.Errorf("quic floor apart: the receiver said %q: %w", lines.Text(), err)
	}
	der, err := hex.DecodeString(certHex)
	if err != nil {
		return 0, fmt.Errorf("quic floor apart: the receiver's certificate: %w", err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		return 0, fmt.Errorf("quic floor apart: the receiver's certificate: %w", err)
	}
	c, err := dialFloor(ctx, addr, leaf)
	if err != nil {
		return 0, fmt.Errorf("quic floor apart: dial: %w", err)
	}
	defer c.CloseWithError(0, "")
	t0 := time.Now()
	if err := sendFloor(ctx, c, n); err != nil {
		return 0, fmt.Errorf("quic floor apart: %w", err)
	}
	if !lines.Scan() {
		return 0, fmt.Errorf("quic floor apart: the receiver gave no count: %v", lines.Err())
	}
	took := time.Since(t0)
	got, err := strconv.ParseInt(lines.Text(), 10, 64)
	if err != nil || got != n {
		return 0, fmt.Errorf("quic floor apart: the receiver got %q bytes of %d", lines.Text(), n)
	}
	return took, nil
}

// dialFloor dials the floor's receiver at addr, trusting the one
// certificate it was made with.
func dialFloor(ctx context.Context, addr string, leaf *x509.Certificate) (*quic.Conn, error) {
	pool := x509.NewCertPool()
	pool.AddCert(leaf)
	return quic.DialAddr(ctx, addr, &tls.Config{RootCAs: pool, ServerName: "localhost", NextProtos: []string{quicFloorProto}}, &quic.Config{})
}

// sendFloor writes n bytes of random content on a new stream of c and
// closes it.
func sendFloor(ctx context.Context, c *quic.Conn, n int64) error {
	buf := make([]byte, 256<<10)
	if _, err := rand.Read(buf); err != nil {
		return err
	}
	s, err := c.OpenStreamSync(ctx)
	if err != nil {
		return fmt.Errorf("open stream: %w", err)
	}
	for left := n; left > 0; left -= int64(len(buf)) {
		if _, err := s.Write(buf[:min(left, int64(len(buf)))]); err != nil {
			return fmt.Errorf("write: %w", err)
		}
	}
	if err := s.Close(); err != nil {
		return fmt.Errorf("close: %w", err)
	}
	return nil
}

// runQuicReceiver is the receiving end of quicFloorApart: it listens on
// 127.0.0.1 with a throwaway certificate, writes its address and the
// certificate (hex DER) as one line to out, takes one connection's first
// stream to its end, writes how many bytes it held and returns. It gives
// up after 5 minutes.
func runQuicReceiver(out io.Writer) error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cert, err := throwawayCert()
	if err != nil {
		return err
	}
	ln, err := quic.ListenAddr("127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{cert}, NextProtos: []string{quicFloorProto}}, &quic.Config{})
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	defer ln.Close()
	if _, err := fmt.Fprintf(out, "%s %x\n", ln.Addr(), cert.Leaf.Raw); err != nil {
		return err
	}
	got, err := receiveFloor(ctx, ln)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(out, "%d\n", got)
	return err
}

// receiveFloor takes ln's first connection's first stream to its end and
// returns how many bytes it held.
func receiveFloor(ctx context.Context, ln *quic.Listener) (int64, error) {
	c, err := ln.Accept(ctx)
	if err != nil {
		return 0, fmt.Errorf("accept: %w", err)
	}
	defer c.CloseWithError(0, "")
	s, err := c.AcceptStream(ctx)
	if err != nil {
		return 0, fmt.Errorf("accept stream: %w", err)
	}
	got, err := io.Copy(io.Discard, s)
	if err != nil {
		return got, fmt.Errorf("read: %w", err)
	}
	return got, nil
}
