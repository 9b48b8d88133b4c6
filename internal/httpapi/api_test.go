package httpapi

import (
	"bufio"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"errors"
	"io"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"pbxsync/internal/history"
	"pbxsync/internal/index"
	"pbxsync/internal/store"
	"pbxsync/internal/wire"
	"pbxsync/syncer"
)

// fakeActions records the actions it is asked for.
type fakeActions struct {
	mu    sync.Mutex
	calls []string
}

func (f *fakeActions) record(s string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, s)
}

func (f *fakeActions) Calls() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.calls...)
}

func (f *fakeActions) Rollback(ctx context.Context, job string, to uint64, hold bool) (uint64, error) {
	if to == 99 {
		return 0, errors.New("no generation 99")
	}
	f.record("rollback " + job + " " + map[bool]string{true: "hold", false: "plain"}[hold])
	return to, nil
}

func (f *fakeActions) Resume(ctx context.Context, job string) error {
	f.record("resume " + job)
	return nil
}

func (f *fakeActions) SyncNow(ctx context.Context, job string) error {
	f.record("sync " + job)
	return nil
}

// apiFixture is a listener on 127.0.0.1 over a fake agent with job
// "conf" and a real store holding two generations of it.
type apiFixture struct {
	base    string
	token   string
	actions *fakeActions
	logs    *strings.Builder
	logMu   *sync.Mutex
	dataDir string
}

type lockedWriter struct {
	mu *sync.Mutex
	b  *strings.Builder
}

func (w lockedWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.Write(p)
}

func newAPIFixture(t *testing.T) *apiFixture {
	t.Helper()
	data := t.TempDir()
	tok, created, err := LoadOrCreateToken(data)
	if err != nil || !created {
		t.Fatalf("token: %v created=%v", err, created)
	}
	st, err := store.Open(filepath.Join(data, "store"), slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	ctx := context.Background()
	put := func(p, content string) index.Item {
		h, n, err := st.PutReader(ctx, strings.NewReader(content))
		if err != nil {
			t.Fatal(err)
		}
		return index.Item{Path: p, Kind: index.KindFile, Size: n, Mode: 0o644, Hash: h}
	}
	g1 := index.Of(put("extensions.conf", "exten => 100,1,Answer()\n"))
	g2 := g1.Clone()
	g2.Set(put("extensions.conf", "exten => 100,1,Answer()\nexten => 101,1,Hangup() ; secret=hunter2\n"))
	for _, x := range []index.Index{g1, g2} {
		if _, err := st.AddGeneration(ctx, &store.Generation{Job: "conf", Origin: "a", State: store.StateGood, Index: x}); err != nil {
			t.Fatal(err)
		}
	}
	// two conflict records: a file's (the loser's content in the store) and
	// a row's, whose losing row is content (a secret) the API never shows
	loser := put("extensions.conf", "exten => 100,1,Answer() ; made on b\n")
	g2Conf, _ := g2.Get("extensions.conf")
	for _, c := range []store.Conflict{
		{ID: "c1", Path: "extensions.conf", Time: time.Unix(1700000000, 0).UTC(), Winner: store.ConflictSide{Node: "a", Generation: 2, Hash: g2Conf.Hash}, Loser: store.ConflictSide{Node: "b", Hash: loser.Hash}},
		{ID: "c2", Path: "ps_auths/1001", Time: time.Unix(1700000001, 0).UTC(), Winner: store.ConflictSide{Node: "b", Generation: 2}, Loser: store.ConflictSide{Node: "a"}, Row: json.RawMessage(`{"id":"1001","password":"hunter2"}`)},
	} {
		if err := st.PutConflict("conf", c); err != nil {
			t.Fatal(err)
		}
	}
	f := &apiFixture{token: tok, actions: &fakeActions{}, logs: &strings.Builder{}, logMu: &sync.Mutex{}, dataDir: data}
	src := &fakeSource{st: syncer.Status{Node: "a", Jobs: []syncer.JobStatus{{Name: "conf", Role: "source", Generation: 2, State: "good"}}}}
	log := slog.New(slog.NewTextHandler(lockedWriter{f.logMu, f.logs}, &slog.HandlerOptions{Level: slog.LevelDebug}))
	s, err := Listen(Options{Addr: "127.0.0.1:0", Source: src, History: st, Actions: f.actions, TokenFile: TokenPath(data), Log: log})
	if err != nil {
		t.Fatal(err)
	}
	sctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { s.Serve(sctx); close(done) }()
	t.Cleanup(func() {
		cancel()
		<-done
		f.logMu.Lock()
		defer f.logMu.Unlock()
		if strings.Contains(f.logs.String(), tok) {
			t.Errorf("the API token is in the log:\n%s", f.logs.String())
		}
	})
	f.base = s.URL()
	return f
}

// do sends one request; hdr holds extra headers ("" values are left out).
func (f *apiFixture) do(t *testing.T, method, path, body string, hdr map[string]string) (int, string) {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, f.base+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	for k, v := range hdr {
		if v != "" {
			req.Header.Set(k, v)
		}
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// TestAPIActionsNeedTokenAndPassCSRF: every action answers 401 without a
// valid token (and does nothing), 403 with a valid token that fails the
// CSRF check (cross-site Sec-Fetch-Site, a foreign Origin, no custom
// header), and 200 with both; the action reached the agent's handler.
func TestAPIActionsNeedTokenAndPassCSRF(t *testing.T) {
	f := newAPIFixture(t)
	auth := "Bearer " + f.token
	actions := []struct{ path, body, call string }{
		{"/api/v1/jobs/conf/rollback", `{"generation": 1}`, "rollback conf plain"},
		{"/api/v1/jobs/conf/resume", "", "resume conf"},
		{"/api/v1/jobs/conf/sync", "", "sync conf"},
	}
	for _, a := range actions {
		for _, c := range []struct {
			name string
			hdr  map[string]string
			want int
		}{
			{"no token", map[string]string{CSRFHeader: "1"}, http.StatusUnauthorized},
			{"wrong token", map[string]string{"Authorization": "Bearer " + strings.Repeat("x", len(f.token)), CSRFHeader: "1"}, http.StatusUnauthorized},
			{"token as basic", map[string]string{"Authorization": "Basic " + f.token, CSRFHeader: "1"}, http.StatusUnauthorized},
			{"cross-site fetch", map[string]string{"Authorization": auth, CSRFHeader: "1", "Sec-Fetch-Site": "cross-site"}, http.StatusForbidden},
			{"foreign origin", map[string]string{"Authorization": auth, CSRFHeader: "1", "Origin": "http://evil.example"}, http.StatusForbidden},
			{"no csrf header", map[string]string{"Authorization": auth}, http.StatusForbidden},
		} {
			code, body := f.do(t, "POST", a.path, a.body, c.hdr)
			if code != c.want {
				t.Errorf("%s %s: %d %s, want %d", a.path, c.name, code, body, c.want)
			}
		}
		if calls := f.actions.Calls(); len(calls) != 0 {
			t.Fatalf("refused requests reached the agent: %v", calls)
		}
		code, body := f.do(t, "POST", a.path, a.body, map[string]string{"Authorization": auth, CSRFHeader: "1", "Sec-Fetch-Site": "same-origin", "Origin": f.base})
		if code != http.StatusOK {
			t.Fatalf("%s with token and same origin: %d %s", a.path, code, body)
		}
		if calls := f.actions.Calls(); len(calls) != 1 || calls[0] != a.call {
			t.Fatalf("%s: agent saw %v, want [%s]", a.path, calls, a.call)
		}
		f.actions.mu.Lock()
		f.actions.calls = nil
		f.actions.mu.Unlock()
	}
	ok := map[string]string{"Authorization": auth, CSRFHeader: "1"}
	for _, c := range []struct {
		path, body string
		want       int
		msg        string
	}{
		{"/api/v1/jobs/nope/sync", "", http.StatusNotFound, `no job \"nope\"`},
		{"/api/v1/jobs/conf/rollback", `{"generation": 99}`, http.StatusConflict, "no generation 99"},
		{"/api/v1/jobs/conf/rollback", `{"gen": 1}`, http.StatusBadRequest, "unknown field"},
		{"/api/v1/jobs/conf/rollback", `{"generation": 1, "hold": true}`, http.StatusOK, `"generation": 1`},
	} {
		if code, body := f.do(t, "POST", c.path, c.body, ok); code != c.want || !strings.Contains(body, c.msg) {
			t.Errorf("POST %s %s: %d %s, want %d with %q", c.path, c.body, code, body, c.want, c.msg)
		}
	}
	// A CORS preflight is never approved, so a page of another origin can
	// never send the custom header.
	req, _ := http.NewRequest("OPTIONS", f.base+"/api/v1/jobs/conf/sync", nil)
	req.Header.Set("Origin", "http://evil.example")
	req.Header.Set("Access-Control-Request-Method", "POST")
	req.Header.Set("Access-Control-Request-Headers", "authorization, x-pbxsync-csrf")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if v := resp.Header.Get("Access-Control-Allow-Origin") + resp.Header.Get("Access-Control-Allow-Headers"); v != "" || resp.StatusCode < 400 {
		t.Errorf("preflight: %d, allows %q", resp.StatusCode, v)
	}
	if code, _ := f.do(t, "GET", "/api/v1/token", "", ok); code != http.StatusNoContent {
		t.Errorf("token check with the token: %d", code)
	}
	if code, _ := f.do(t, "GET", "/api/v1/token", "", nil); code != http.StatusUnauthorized {
		t.Errorf("token check without a token: %d", code)
	}

	// A rotated token replaces the old one at once.
	newTok, err := RotateToken(f.dataDir)
	if err != nil {
		t.Fatal(err)
	}
	if code, _ := f.do(t, "POST", "/api/v1/jobs/conf/sync", "", ok); code != http.StatusUnauthorized {
		t.Errorf("old token after rotation: %d, want 401", code)
	}
	if code, body := f.do(t, "POST", "/api/v1/jobs/conf/sync", "", map[string]string{"Authorization": "Bearer " + newTok, CSRFHeader: "1"}); code != http.StatusOK {
		t.Errorf("new token after rotation: %d %s", code, body)
	}
}

// TestAPIReadEndpoints: status, history and conflicts are the JSON of
// status --json, history --json and conflicts --json (without a losing
// row's content), readable without a token; a diff lists paths
// without a token and shows content (which may hold secrets) only with it.
func TestAPIReadEndpoints(t *testing.T) {
	f := newAPIFixture(t)
	code, body := f.do(t, "GET", "/api/v1/status", "", nil)
	var st syncer.Status
	if code != 200 || json.Unmarshal([]byte(body), &st) != nil || st.Node != "a" || len(st.Jobs) != 1 {
		t.Fatalf("status: %d %s", code, body)
	}
	code, body = f.do(t, "GET", "/api/v1/jobs/conf/history", "", nil)
	var gens []store.GenerationInfo
	if code != 200 || json.Unmarshal([]byte(body), &gens) != nil || len(gens) != 2 || gens[1].Number != 2 || gens[1].State != store.StateGood {
		t.Fatalf("history: %d %s", code, body)
	}
	if code, body := f.do(t, "GET", "/api/v1/jobs/nope/history", "", nil); code != 404 || !strings.Contains(body, `no job \"nope\"`) {
		t.Errorf("history of an unknown job: %d %s", code, body)
	}
	code, body = f.do(t, "GET", "/api/v1/jobs/conf/conflicts", "", nil)
	var cs []history.Conflict
	if code != 200 || json.Unmarshal([]byte(body), &cs) != nil || len(cs) != 2 {
		t.Fatalf("conflicts: %d %s", code, body)
	}
	if c := cs[0]; c.ID != "c1" || c.Path != "extensions.conf" || c.Winner.Node != "a" || c.Winner.Generation != 2 || len(c.Winner.Hash) != 64 || c.Loser.Node != "b" || len(c.Loser.Hash) != 64 || !c.Time.Equal(time.Unix(1700000000, 0)) {
		t.Errorf("conflict record %+v", c)
	}
	if strings.Contains(body, "hunter2") || cs[1].Row != nil {
		t.Errorf("the conflicts show a losing row's content without a token: %s", body)
	}
	if code, body := f.do(t, "GET", "/api/v1/jobs/nope/conflicts", "", nil); code != 404 {
		t.Errorf("conflicts of an unknown job: %d %s", code, body)
	}
	code, body = f.do(t, "GET", "/api/v1/jobs/conf/diff?from=1&to=2", "", nil)
	if code != 200 || !strings.Contains(body, `"path": "extensions.conf"`) || !strings.Contains(body, `"kind": "modified"`) || strings.Contains(body, "hunter2") {
		t.Errorf("diff without content: %d %s", code, body)
	}
	if code, body := f.do(t, "GET", "/api/v1/jobs/conf/diff?from=1&to=2&content=1", "", nil); code != 401 || strings.Contains(body, "hunter2") {
		t.Errorf("diff with content and no token: %d %s", code, body)
	}
	code, body = f.do(t, "GET", "/api/v1/jobs/conf/diff?from=1&to=2&content=1", "", map[string]string{"Authorization": "Bearer " + f.token})
	if code != 200 || !strings.Contains(body, `+exten => 101,1,Hangup() ; secret=hunter2`) {
		t.Errorf("diff with content and token: %d %s", code, body)
	}
	if code, _ := f.do(t, "GET", "/api/v1/jobs/conf/diff?from=1&to=x", "", nil); code != 400 {
		t.Errorf("diff to=x: %d", code)
	}
	if code, _ := f.do(t, "GET", "/api/v1/jobs/conf/diff?from=1&to=7", "", nil); code != 404 {
		t.Errorf("diff to a missing generation: %d", code)
	}
	code, body = f.do(t, "GET", "/", "", nil)
	if code != 200 || !strings.Contains(body, "<title>pbxsync") {
		t.Errorf("dashboard: %d %.200s", code, body)
	}
	for _, asset := range []string{"/app.js", "/app.css", "/favicon.svg"} {
		if code, body := f.do(t, "GET", asset, "", nil); code != 200 || len(body) < 100 {
			t.Errorf("%s: %d, %d bytes", asset, code, len(body))
		}
	}
	if code, _ := f.do(t, "POST", "/", "", nil); code != http.StatusMethodNotAllowed {
		t.Errorf("POST /: %d", code)
	}
	if code, _ := f.do(t, "GET", "/api/v1/nothing", "", nil); code != 404 {
		t.Errorf("unknown endpoint: %d", code)
	}
	// DNS rebinding: a listener on loopback answers only loopback names.
	req, _ := http.NewRequest("GET", f.base+"/api/v1/status", nil)
	req.Host = "evil.example:80"
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMisdirectedRequest {
		t.Errorf("Host evil.example on a loopback listener: %d, want 421", resp.StatusCode)
	}
	req.Host = "localhost:1234"
	if resp, err = http.DefaultClient.Do(req); err != nil || resp.StatusCode != 200 {
		t.Errorf("Host localhost: %v %v", resp, err)
	}
	resp.Body.Close()
}

// TestAPIEventsStream: /api/v1/events sends the status at once and again
// when it changes.
func TestAPIEventsStream(t *testing.T) {
	src := &fakeSource{st: syncer.Status{Node: "a", Jobs: []syncer.JobStatus{{Name: "conf", Generation: 1, State: "good"}}}}
	s, err := Listen(Options{Addr: "127.0.0.1:0", Source: src})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go s.Serve(ctx)
	resp, err := http.Get(s.URL() + "/api/v1/events")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); ct != "text/event-stream" {
		t.Fatalf("content type %q", ct)
	}
	events := make(chan syncer.Status, 8)
	go func() {
		sc := bufio.NewScanner(resp.Body)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		event := ""
		for sc.Scan() {
			line := sc.Text()
			switch {
			case strings.HasPrefix(line, "event: "):
				event = strings.TrimPrefix(line, "event: ")
			case strings.HasPrefix(line, "data: ") && event == "status":
				var st syncer.Status
				if json.Unmarshal([]byte(strings.TrimPrefix(line, "data: ")), &st) == nil {
					events <- st
				}
			}
		}
		close(events)
	}()
	next := func() syncer.Status {
		t.Helper()
		select {
		case st, ok := <-events:
			if !ok {
				t.Fatal("stream ended")
			}
			return st
		case <-time.After(60 * time.Second):
			t.Fatal("no status event within 60 s")
		}
		return syncer.Status{}
	}
	if st := next(); st.Jobs[0].Generation != 1 {
		t.Fatalf("first event: %+v", st)
	}
	src.mu.Lock()
	src.st.Jobs = []syncer.JobStatus{{Name: "conf", Generation: 2, State: "good"}}
	src.mu.Unlock()
	if st := next(); st.Jobs[0].Generation != 2 {
		t.Fatalf("event after a change: %+v", st)
	}
}

// TestTokenFile: created once with mode 0600, the same on the next call,
// refused when others may read it.
func TestTokenFile(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	tok, created, err := LoadOrCreateToken(dir)
	if err != nil || !created || len(tok) < 40 {
		t.Fatalf("first: %q %v %v", tok, created, err)
	}
	fi, err := os.Stat(TokenPath(dir))
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("token file mode %v %v", fi.Mode(), err)
	}
	again, created, err := LoadOrCreateToken(dir)
	if err != nil || created || again != tok {
		t.Fatalf("second: %q %v %v", again, created, err)
	}
	os.Chmod(TokenPath(dir), 0o644)
	if _, _, err := LoadOrCreateToken(dir); err == nil || !strings.Contains(err.Error(), "chmod 600") {
		t.Fatalf("world-readable token accepted: %v", err)
	}
	// Concurrent first uses agree on one token.
	dir2 := filepath.Join(t.TempDir(), "data")
	var wg sync.WaitGroup
	got := make([]string, 8)
	for i := range got {
		wg.Add(1)
		go func() {
			defer wg.Done()
			got[i], _, _ = LoadOrCreateToken(dir2)
		}()
	}
	wg.Wait()
	for _, g := range got {
		if g != got[0] || g == "" {
			t.Fatalf("concurrent first uses got different tokens: %q", got)
		}
	}
}

// TestTLSListener: with a certificate the listener serves HTTPS and
// nothing is logged about clear text; without one on a non-loopback
// address it warns.
func TestTLSListener(t *testing.T) {
	dir := t.TempDir()
	cert, key := selfSigned(t, dir)
	var logs strings.Builder
	var mu sync.Mutex
	log := slog.New(slog.NewTextHandler(lockedWriter{&mu, &logs}, nil))
	src := &fakeSource{st: syncer.Status{Node: "a"}}
	s, err := Listen(Options{Addr: "127.0.0.1:0", CertFile: cert, KeyFile: key, Source: src, Log: log})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go s.Serve(ctx)
	if !strings.HasPrefix(s.URL(), "https://") {
		t.Fatalf("URL %s", s.URL())
	}
	c := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}
	resp, err := c.Get(s.URL() + "/api/v1/status")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 || resp.TLS == nil {
		t.Fatalf("https status: %d tls=%v", resp.StatusCode, resp.TLS != nil)
	}
	if _, err := Listen(Options{Addr: "127.0.0.1:0", CertFile: cert, KeyFile: filepath.Join(dir, "missing.pem"), Source: src}); err == nil || !strings.Contains(err.Error(), "missing.pem") {
		t.Errorf("missing key file: %v", err)
	}

	mu.Lock()
	defer mu.Unlock()
	if strings.Contains(logs.String(), "without TLS") {
		t.Errorf("a warning about clear text on a TLS listener:\n%s", logs.String())
	}
}

// TestLoopbackDecides: only a listener bound to a loopback address counts
// as local (no warning without TLS, Host names checked); a wildcard or an
// interface's address warns unless it serves TLS.
func TestLoopbackDecides(t *testing.T) {
	for _, c := range []struct {
		ip   string
		want bool
	}{{"127.0.0.1", true}, {"127.3.4.5", true}, {"::1", true}, {"0.0.0.0", false}, {"::", false}, {"10.0.0.1", false}, {"192.0.2.7", false}} {
		if got := isLoopback(&net.TCPAddr{IP: net.ParseIP(c.ip), Port: 7421}); got != c.want {
			t.Errorf("isLoopback(%s) = %v, want %v", c.ip, got, c.want)
		}
	}
	for host, want := range map[string]bool{"127.0.0.1:7421": true, "localhost:7421": true, "localhost": true, "pbx1.localhost:80": true,
		"[::1]:7421": true, "evil.example:7421": false, "127.0.0.1.evil.example": false, "10.0.0.1:7421": false, "": false} {
		if got := loopbackHost(host); got != want {
			t.Errorf("loopbackHost(%q) = %v, want %v", host, got, want)
		}
	}
}

// selfSigned writes a certificate for 127.0.0.1 and its key.
func selfSigned(t *testing.T, dir string) (certFile, keyFile string) {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "pbxsync test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &k.PublicKey, k)
	if err != nil {
		t.Fatal(err)
	}
	kb, err := x509.MarshalECPrivateKey(k)
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644)
	os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb}), 0o600)
	return certFile, keyFile
}

// nodeSource is a Source that also tells its own state, counting asks.
type nodeSource struct {
	fakeSource
	mu    sync.Mutex
	asked int
}

func (n *nodeSource) LocalState() *wire.State {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.asked++
	return &wire.State{Node: "a", Healthy: true, Asterisk: "up", AsteriskVersion: "20.5.0", Disks: []wire.Disk{{Path: "/var/lib/pbxsync", FreeBytes: 1 << 30}}}
}

// TestAPINode: /api/v1/node is this node's published state; however many
// pages ask, the agent (which pings Asterisk for it) is asked once per
// interval. A Source without it answers 503.
func TestAPINode(t *testing.T) {
	src := &nodeSource{fakeSource: fakeSource{st: syncer.Status{Node: "a"}}}
	s, err := Listen(Options{Addr: "127.0.0.1:0", Source: src})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go s.Serve(ctx)
	for range 5 {
		code, body := get(t, s.URL()+"/api/v1/node")
		if code != 200 || !strings.Contains(body, `"asterisk_version": "20.5.0"`) || !strings.Contains(body, `"free_bytes": 1073741824`) {
			t.Fatalf("node: %d %s", code, body)
		}
	}
	src.mu.Lock()
	asked := src.asked
	src.mu.Unlock()
	if asked != 1 {
		t.Errorf("5 requests asked the agent %d times, want 1 (cached for %s)", asked, nodeEvery/2)
	}

	plain, err := Listen(Options{Addr: "127.0.0.1:0", Source: &fakeSource{}})
	if err != nil {
		t.Fatal(err)
	}
	go plain.Serve(ctx)
	if code, _ := get(t, plain.URL()+"/api/v1/node"); code != http.StatusServiceUnavailable {
		t.Errorf("node without LocalState: %d", code)
	}
}

// TestTokenOwnedLikeDataDir: created by root in a data_dir another user
// owns (the agent's, User=asterisk), the token file belongs to that user,
// who can then read it.
func TestTokenOwnedLikeDataDir(t *testing.T) {
	if os.Geteuid() != 0 {
		if os.Getenv("CI") != "" {
			t.Fatal("CI runs as root (.ci/run): this test needs root to give the directory another owner")
		}
		t.Skip("needs root to give the directory another owner")
	}
	dir := filepath.Join(t.TempDir(), "data")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(dir, 4242, 4243); err != nil {
		t.Fatal(err)
	}
	if _, _, err := LoadOrCreateToken(dir); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(TokenPath(dir))
	if err != nil {
		t.Fatal(err)
	}
	if st := fi.Sys().(*syscall.Stat_t); st.Uid != 4242 || st.Gid != 4243 || fi.Mode().Perm() != 0o600 {
		t.Errorf("token file owned by %d:%d mode %v, want 4242:4243 0600", st.Uid, st.Gid, fi.Mode().Perm())
	}
	if _, err := RotateToken(dir); err != nil {
		t.Fatal(err)
	}
	if fi, _ = os.Stat(TokenPath(dir)); fi.Sys().(*syscall.Stat_t).Uid != 4242 {
		t.Errorf("a rotated token is owned by %d", fi.Sys().(*syscall.Stat_t).Uid)
	}
}
