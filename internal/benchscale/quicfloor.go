package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"math/big"
	"time"

	"github.com/quic-go/quic-go"
)

// quicFloor times n bytes over one stream of a quic-go connection on
// 127.0.0.1, both ends in this process, from memory to nothing: the least
// any sync over this QUIC stack can take for n bytes of content on this
// machine, with no file read, hashed, stored or written. The agents'
// transport is quic-go with its default flow control (remotemon), as
// here; the handshake is outside the timing.
func quicFloor(ctx context.Context, n int64) (time.Duration, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Minute) // bounds a hang
	defer cancel()
	cert, err := throwawayCert()
	if err != nil {
		return 0, err
	}
	const proto = "benchscale-floor"
	ln, err := quic.ListenAddr("127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{cert}, NextProtos: []string{proto}}, &quic.Config{})
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
		c, err := ln.Accept(ctx)
		if err != nil {
			received <- result{err: err}
			return
		}
		defer c.CloseWithError(0, "")
		s, err := c.AcceptStream(ctx)
		if err != nil {
			received <- result{err: err}
			return
		}
		got, err := io.Copy(io.Discard, s)
		received <- result{got, err}
	}()
	// the client trusts the one certificate it was made with
	pool := x509.NewCertPool()
	pool.AddCert(cert.Leaf)
	c, err := quic.DialAddr(ctx, ln.Addr().String(), &tls.Config{RootCAs: pool, ServerName: "localhost", NextProtos: []string{proto}}, &quic.Config{})
	if err != nil {
		return 0, fmt.Errorf("quic floor: dial: %w", err)
	}
	defer c.CloseWithError(0, "")
	buf := make([]byte, 256<<10)
	if _, err := rand.Read(buf); err != nil {
		return 0, err
	}
	t0 := time.Now()
	s, err := c.OpenStreamSync(ctx)
	if err != nil {
		return 0, fmt.Errorf("quic floor: open stream: %w", err)
	}
	for left := n; left > 0; left -= int64(len(buf)) {
		if _, err := s.Write(buf[:min(left, int64(len(buf)))]); err != nil {
			return 0, fmt.Errorf("quic floor: write: %w", err)
		}
	}
	if err := s.Close(); err != nil {
		return 0, fmt.Errorf("quic floor: close: %w", err)
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
