package remotemon

import (
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"

	"github.com/quic-go/quic-go"

	"pbxsync/internal/identity"
)

// alpn is the application protocol negotiated on every connection.
const alpn = "pbxsync/1"

// ErrNotPinned is returned (and logged) when a node presents an ID that the
// config does not pin.
var ErrNotPinned = errors.New("peer ID not pinned")

func presentedID(rawCerts [][]byte) (identity.ID, error) {
	if len(rawCerts) == 0 {
		return identity.ID{}, errors.New("no certificate presented")
	}
	cert, err := x509.ParseCertificate(rawCerts[0])
	if err != nil {
		return identity.ID{}, fmt.Errorf("parse presented certificate: %w", err)
	}
	return identity.IDFromCertificate(cert)
}

// serverTLS accepts clients whose ID is pinned by some peer.
func (m *Monitor) serverTLS() *tls.Config {
	base := &tls.Config{
		MinVersion:   tls.VersionTLS13,
		Certificates: []tls.Certificate{m.cert},
		ClientAuth:   tls.RequireAnyClientCert,
		NextProtos:   []string{alpn},
	}
	base.GetConfigForClient = func(hello *tls.ClientHelloInfo) (*tls.Config, error) {
		remote := "unknown address"
		if hello.Conn != nil {
			remote = hello.Conn.RemoteAddr().String()
		}
		c := base.Clone()
		c.GetConfigForClient = nil
		c.VerifyPeerCertificate = func(raw [][]byte, _ [][]*x509.Certificate) error {
			id, err := presentedID(raw)
			if err != nil {
				m.refusedHandshake(remote, "", "refusing connection: bad certificate", "err", err)
				return err
			}
			if _, ok := m.peerByID(id); !ok {
				m.refusedHandshake(remote, id.String(), "refusing connection from unknown node: its ID is not pinned by any [[peer]]", "presented_id", id.String())
				return fmt.Errorf("%w: %s", ErrNotPinned, id)
			}
			return nil
		}
		return c, nil
	}
	return base
}

// clientTLS accepts only the pinned ID of peer p.
func (m *Monitor) clientTLS(p Peer) *tls.Config {
	return &tls.Config{
		MinVersion:         tls.VersionTLS13,
		Certificates:       []tls.Certificate{m.cert},
		NextProtos:         []string{alpn},
		ServerName:         "pbxsync",
		InsecureSkipVerify: true, // the pin below replaces CA verification
		VerifyPeerCertificate: func(raw [][]byte, _ [][]*x509.Certificate) error {
			id, err := presentedID(raw)
			if err != nil {
				return err
			}
			if id != p.ID {
				return fmt.Errorf("%w: peer %q at %s presented ID %s, but the config pins %s", ErrNotPinned, p.Name, p.Address, id, p.ID)
			}
			return nil
		},
	}
}

// resetKey derives a stable stateless-reset key from the node's private key,
// so that after a restart this node can reset connections it has forgotten.
func resetKey(ident *identity.Identity, log *slog.Logger) *quic.StatelessResetKey {
	type seeder interface{ Seed() []byte }
	var key quic.StatelessResetKey
	s, ok := ident.Certificate.PrivateKey.(seeder)
	if !ok {
		log.Warn("no stateless reset key: private key has no seed")
		return nil
	}
	key = sha256.Sum256(append([]byte("pbxsync stateless reset\x00"), s.Seed()...))
	return &key
}
