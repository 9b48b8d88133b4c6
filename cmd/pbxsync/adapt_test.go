package main

// Helpers that turn a real configuration (an example, `check --example`)
// into one that runs on this machine: every absolute path under a
// temporary root, every address on 127.0.0.1 with a free port, the peers'
// IDs replaced by real ones, the AMI pointed at a simulator, secret and DSN
// files written, failover hooks that only write to a file.

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"pbxsync/internal/amisim"
	"pbxsync/internal/config"
	"pbxsync/internal/identity"
	"pbxsync/internal/testwait"
)

// exampleSecret is what every adapted secret_file holds.
const exampleSecret = "example-ami-secret-7c1d"

// adaptEnv is where one node of an adapted configuration lives.
type adaptEnv struct {
	root     string                 // absolute paths of the original are put under root
	listen   string                 // new [node] listen
	http     string                 // new [node] http (when the original has one)
	peerAddr map[string]string      // peer name → new address (default: a closed port on 127.0.0.1)
	peerID   map[string]identity.ID // peer name → new ID (default: keep)
	ami      string                 // new [asterisk] ami (when the original has one)
	dsn      string                 // written into dsn_file (default: a DSN of a closed port)
}

// freeTCPAddr returns 127.0.0.1:PORT with a TCP port that was free a moment ago.
func freeTCPAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// under returns the absolute path p of the original host under root.
func under(root, p string) string { return filepath.Join(root, filepath.FromSlash(p)) }

// adaptConfig rewrites text (whose loaded form is cfg) for env; it writes
// the secret and DSN files and creates the job roots. Values are replaced
// where they are written as TOML basic strings, as every example writes
// them.
func adaptConfig(t *testing.T, text string, cfg *config.Config, env adaptEnv) string {
	t.Helper()
	repl := func(old, new string) {
		q := strconv.Quote(old)
		if !strings.Contains(text, q) {
			t.Fatalf("%s: %s is not written as %s", cfg.File, old, q)
		}
		text = strings.ReplaceAll(text, q, strconv.Quote(new))
	}
	mkdir := func(p string) {
		if err := os.MkdirAll(p, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	repl(cfg.Node.Listen, env.listen)
	if cfg.Node.HTTP != "" {
		repl(cfg.Node.HTTP, env.http)
	}
	if n := cfg.Node; n.HTTPCert != "" {
		crt, key := under(env.root, n.HTTPCert), under(env.root, n.HTTPKey)
		mkdir(filepath.Dir(crt))
		mkdir(filepath.Dir(key))
		writeTestCert(t, crt, key)
		repl(n.HTTPCert, crt)
		repl(n.HTTPKey, key)
	}
	if strings.Contains(text, strconv.Quote(cfg.Node.DataDir)) {
		repl(cfg.Node.DataDir, under(env.root, cfg.Node.DataDir))
	} else {
		text = strings.Replace(text, "[node]\n", fmt.Sprintf("[node]\ndata_dir = %q\n", under(env.root, cfg.Node.DataDir)), 1)
	}
	for _, p := range cfg.Peers {
		addr, ok := env.peerAddr[p.Name]
		if !ok {
			addr = "127.0.0.1:9" // discard: nobody answers QUIC there
		}
		repl(p.Address, addr)
		if id, ok := env.peerID[p.Name]; ok {
			repl(p.ID.String(), id.String())
		}
	}
	for _, j := range cfg.Jobs {
		switch j.Type {
		case config.TypeFiles:
			if strings.Contains(text, strconv.Quote(j.Path)) {
				repl(j.Path, under(env.root, j.Path))
			}
			mkdir(under(env.root, j.Path))
		case config.TypePostgres:
			if j.DSNFile == "" {
				continue
			}
			dsn := env.dsn
			if dsn == "" {
				dsn = "postgres://pbxsync@127.0.0.1:9/asterisk?sslmode=disable&connect_timeout=1"
			}
			f := under(env.root, j.DSNFile)
			mkdir(filepath.Dir(f))
			if err := os.WriteFile(f, []byte(dsn+"\n"), 0o600); err != nil {
				t.Fatal(err)
			}
			if strings.Contains(text, strconv.Quote(j.DSNFile)) {
				repl(j.DSNFile, f)
			}
		}
	}
	if a := cfg.Asterisk; a.AMI != "" {
		repl(a.AMI, env.ami)
		f := under(env.root, a.SecretFile)
		mkdir(filepath.Dir(f))
		if err := os.WriteFile(f, []byte(exampleSecret+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		repl(a.SecretFile, f)
	}
	if strings.Contains(text, "\n[asterisk]\n") {
		logFile := under(env.root, asteriskLog(cfg))
		mkdir(filepath.Dir(logFile))
		if cfg.Asterisk.Log != "" && strings.Contains(text, strconv.Quote(cfg.Asterisk.Log)) {
			repl(cfg.Asterisk.Log, logFile)
		} else {
			text = strings.Replace(text, "\n[asterisk]\n", fmt.Sprintf("\n[asterisk]\nlog = %q\n", logFile), 1)
		}
	}
	// Failover hooks would change this machine (ip addr add): they only
	// write what they would have done.
	hooks := filepath.Join(env.root, "hooks.log")
	for _, h := range append(append([]config.PeerHook(nil), cfg.OnPeerDown...), cfg.OnPeerUp...) {
		if strings.Contains(text, strconv.Quote(h.Command)) {
			repl(h.Command, fmt.Sprintf("echo %q >> %s", h.Command, hooks))
		}
	}
	return text
}

// asteriskLog is the Asterisk log of the host of cfg: [asterisk] log, or
// where Asterisk writes it by default (an empty log asks Asterisk, and the
// simulator writes where the adapted file says).
func asteriskLog(cfg *config.Config) string {
	if cfg.Asterisk.Log != "" {
		return cfg.Asterisk.Log
	}
	return "/var/log/asterisk/messages"
}

// exNode is one host of an adapted example farm.
type exNode struct {
	name    string
	root    string
	cfgPath string
	cfg     *config.Config // the adapted configuration
	orig    *config.Config // the example's
	id      identity.ID
	sim     *amisim.Server // its Asterisk, when it has [asterisk] ami
	log     *syncBuffer
	stop    func()
}

// path returns where the host's absolute path p is on this machine.
func (n *exNode) path(p string) string { return under(n.root, p) }

// adaptFarm adapts every config file of an example directory as one farm:
// each host gets a root, a QUIC port, an identity (its peers pin the real
// ID) and an AMI simulator. dsn, when set, gives each host's DSN.
func adaptFarm(t *testing.T, files []string, dsn func(node string) string) map[string]*exNode {
	t.Helper()
	nodes := map[string]*exNode{}
	base := t.TempDir()
	var order []*exNode
	for _, f := range files {
		orig, err := config.Load(f)
		if err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		n := &exNode{name: orig.Node.Name, root: filepath.Join(base, orig.Node.Name), orig: orig, log: &syncBuffer{}}
		id, err := identity.LoadOrCreate(n.path(orig.Node.DataDir))
		if err != nil {
			t.Fatal(err)
		}
		n.id = id.ID
		nodes[n.name] = n
		order = append(order, n)
	}
	ports := map[string]string{}
	for _, n := range order {
		ports[n.name] = fmt.Sprintf("127.0.0.1:%d", freeUDPPort(t))
	}
	for i, n := range order {
		env := adaptEnv{root: n.root, listen: ports[n.name], http: freeTCPAddr(t), peerAddr: ports, peerID: map[string]identity.ID{}}
		for name, o := range nodes {
			env.peerID[name] = o.id
		}
		if dsn != nil {
			env.dsn = dsn(n.name)
		}
		if a := n.orig.Asterisk; a.AMI != "" {
			confDir := n.path("/etc/asterisk")
			if err := os.MkdirAll(confDir, 0o755); err != nil {
				t.Fatal(err)
			}
			sim, err := amisim.Start(amisim.Config{Username: a.Username, Secret: exampleSecret, ConfigDir: confDir, LogPath: n.path(asteriskLog(n.orig))})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() {
				ctx, cancel := context.WithTimeout(context.Background(), testwait.Limit())
				defer cancel()
				sim.Close(ctx)
			})
			n.sim, env.ami = sim, sim.Addr()
		}
		text, err := os.ReadFile(files[i])
		if err != nil {
			t.Fatal(err)
		}
		adapted := adaptConfig(t, string(text), n.orig, env)
		n.cfgPath = filepath.Join(n.root, "pbxsync.toml")
		if err := os.WriteFile(n.cfgPath, []byte(adapted), 0o644); err != nil {
			t.Fatal(err)
		}
		if n.cfg, err = config.Load(n.cfgPath); err != nil {
			t.Fatalf("adapted %s:\n%v\n%s", files[i], err, adapted)
		}
	}
	return nodes
}

// startRun runs `pbxsync run --config path` in the background until it
// has started (it logged "agent started") or refused to (it returned). It
// returns whether it started, what it wrote to stderr, and a stop
// function (stop waits for run to return; a no-op when it refused).
func startRun(t *testing.T, path string, log *syncBuffer) (started bool, stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan int, 1)
	go func() { done <- cmdRun(ctx, []string{"--config", path}, log, log) }()
	exited := false
	testwait.Eventually(t, "pbxsync run starts or refuses", func() error {
		select {
		case <-done:
			exited = true
			return nil
		default:
		}
		if strings.Contains(log.String(), "agent started") {
			return nil
		}
		return errors.New("still starting")
	})
	if exited {
		cancel()
		return false, func() {}
	}
	stopped := false
	return true, func() {
		if stopped {
			return
		}
		stopped = true
		cancel()
		select {
		case code := <-done:
			if code != 0 {
				t.Errorf("pbxsync run --config %s: exit %d after a stop\n%s", path, code, log.String())
			}
		case <-time.After(testwait.Limit()):
			t.Errorf("pbxsync run --config %s did not stop", path)
		}
	}
}

// writeTestCert writes a self-signed certificate for 127.0.0.1 and its
// key (PEM), as an admin's http_cert and http_key.
func writeTestCert(t *testing.T, certFile, keyFile string) {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "pbxsync example"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour), IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &k.PublicKey, k)
	if err != nil {
		t.Fatal(err)
	}
	kb, err := x509.MarshalECPrivateKey(k)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb}), 0o600); err != nil {
		t.Fatal(err)
	}
}
