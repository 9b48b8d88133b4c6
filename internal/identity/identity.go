package identity

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"os"
	"path/filepath"
	"time"
)

// File names inside data_dir.
const (
	KeyFile  = "node.key" // PKCS#8 Ed25519 private key, PEM, mode 0600
	CertFile = "node.crt" // self-signed certificate, PEM
)

// Identity is a node's key pair and certificate.
type Identity struct {
	ID          ID
	Certificate tls.Certificate
}

// LoadOrCreate reads the identity in dir, creating dir, the key and the
// certificate when they are missing. The key file is written with mode 0600
// and fsynced before it is renamed into place, so a crash never leaves a
// half-written key.
func LoadOrCreate(dir string) (*Identity, error) {
	keyPath, certPath := filepath.Join(dir, KeyFile), filepath.Join(dir, CertFile)
	_, errKey := os.Stat(keyPath)
	_, errCert := os.Stat(certPath)
	switch {
	case errKey == nil && errCert == nil:
		return Load(dir)
	case errKey == nil && errors.Is(errCert, os.ErrNotExist):
		return nil, fmt.Errorf("identity in %s: %s exists but %s is missing; restore it or remove both to make a new identity", dir, KeyFile, CertFile)
	case errCert == nil && errors.Is(errKey, os.ErrNotExist):
		return nil, fmt.Errorf("identity in %s: %s exists but %s is missing; restore it or remove both to make a new identity", dir, CertFile, KeyFile)
	case !errors.Is(errKey, os.ErrNotExist):
		return nil, fmt.Errorf("identity: %w", errKey)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("identity: create data dir: %w", err)
	}
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("identity: generate key: %w", err)
	}
	der, err := selfSigned(priv)
	if err != nil {
		return nil, fmt.Errorf("identity: %w", err)
	}
	pkcs8, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		return nil, fmt.Errorf("identity: marshal key: %w", err)
	}
	if err := writeFileSync(keyPath, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: pkcs8}), 0o600); err != nil {
		return nil, fmt.Errorf("identity: %w", err)
	}
	if err := writeFileSync(certPath, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644); err != nil {
		return nil, fmt.Errorf("identity: %w", err)
	}
	return Load(dir)
}

// selfSigned makes a certificate for priv's public key, signed by itself,
// with a random 127-bit serial number.
func selfSigned(priv ed25519.PrivateKey) ([]byte, error) {
	pub := priv.Public().(ed25519.PublicKey)
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return nil, fmt.Errorf("serial: %w", err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: "pbxsync " + IDFromPublicKey(pub).String()},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().AddDate(100, 0, 0),
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, pub, priv)
	if err != nil {
		return nil, fmt.Errorf("create certificate: %w", err)
	}
	return der, nil
}

// RunCertificate returns a new certificate of the node's key, made now
// with a random serial number: what one run of the agent presents to its
// peers. The node's ID is its key's, so peers accept it as they accept the
// stored one, and a peer tells a restart of this node from a reconnection
// by the serial number changing.
func (id *Identity) RunCertificate() (tls.Certificate, error) {
	priv, ok := id.Certificate.PrivateKey.(ed25519.PrivateKey)
	if !ok {
		return tls.Certificate{}, fmt.Errorf("identity: node key is %T, want Ed25519", id.Certificate.PrivateKey)
	}
	der, err := selfSigned(priv)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("identity: run certificate: %w", err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("identity: run certificate: %w", err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: priv, Leaf: leaf}, nil
}

// Load reads an existing identity from dir.
func Load(dir string) (*Identity, error) {
	keyPath, certPath := filepath.Join(dir, KeyFile), filepath.Join(dir, CertFile)
	if st, err := os.Stat(keyPath); err == nil && st.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("identity: %s has mode %04o; it must not be readable by others (chmod 600)", keyPath, st.Mode().Perm())
	}
	cert, err := tls.LoadX509KeyPair(certPath, keyPath)
	if err != nil {
		return nil, fmt.Errorf("identity: load %s and %s: %w", certPath, keyPath, err)
	}
	leaf, err := x509.ParseCertificate(cert.Certificate[0])
	if err != nil {
		return nil, fmt.Errorf("identity: parse %s: %w", certPath, err)
	}
	cert.Leaf = leaf
	id, err := IDFromCertificate(leaf)
	if err != nil {
		return nil, fmt.Errorf("identity: %s: %w", certPath, err)
	}
	priv, ok := cert.PrivateKey.(ed25519.PrivateKey)
	if !ok || !priv.Public().(ed25519.PublicKey).Equal(leaf.PublicKey) {
		return nil, fmt.Errorf("identity: %s does not belong to %s", keyPath, certPath)
	}
	return &Identity{ID: id, Certificate: cert}, nil
}

// writeFileSync writes data to path through a temporary file that is
// fsynced and renamed into place, then fsyncs the directory.
func writeFileSync(path string, data []byte, mode os.FileMode) error {
	tmp := path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, mode)
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("sync %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("close %s: %w", path, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("rename %s: %w", path, err)
	}
	d, err := os.Open(filepath.Dir(path))
	if err != nil {
		return fmt.Errorf("sync dir of %s: %w", path, err)
	}
	defer d.Close()
	return d.Sync()
}
