package identity

import (
	"crypto/ed25519"
	"testing"
)

// TestRunCertificate: each run certificate carries the node's key (its ID
// is the node's, so pinned peers accept it), is signed by that key, and
// has a serial number of its own (what tells a peer the node restarted).
func TestRunCertificate(t *testing.T) {
	id, err := LoadOrCreate(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{id.Certificate.Leaf.SerialNumber.String(): true}
	for range 3 {
		c, err := id.RunCertificate()
		if err != nil {
			t.Fatal(err)
		}
		got, err := IDFromCertificate(c.Leaf)
		if err != nil {
			t.Fatal(err)
		}
		if got != id.ID {
			t.Fatalf("run certificate names %s, the node is %s", got, id.ID)
		}
		if err := c.Leaf.CheckSignature(c.Leaf.SignatureAlgorithm, c.Leaf.RawTBSCertificate, c.Leaf.Signature); err != nil {
			t.Fatalf("run certificate not signed by its own key: %v", err)
		}
		if _, ok := c.PrivateKey.(ed25519.PrivateKey); !ok {
			t.Fatalf("run certificate's key is %T", c.PrivateKey)
		}
		serial := c.Leaf.SerialNumber.String()
		if seen[serial] {
			t.Fatalf("serial %s repeated", serial)
		}
		seen[serial] = true
	}
}
