package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"pbxsync/internal/amisim"
	"pbxsync/internal/config"
	"pbxsync/internal/history"
	"pbxsync/internal/httpapi"
	"pbxsync/internal/identity"
	"pbxsync/internal/store"
	"pbxsync/internal/testlog"
	"pbxsync/internal/testwait"
	"pbxsync/syncer"
)

// ChromiumEnv names a Chromium (or Chrome) binary for the browser test;
// without it the test looks for chromium, chromium-browser, google-chrome
// on PATH.
const ChromiumEnv = "PBXSYNC_CHROMIUM"

func findChromium(t *testing.T) string {
	t.Helper()
	if p := os.Getenv(ChromiumEnv); p != "" {
		return p
	}
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome", "google-chrome-stable", "headless-shell"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	if os.Getenv("CI") != "" {
		t.Fatalf("no Chromium for the dashboard test (CI never skips it): install Debian's chromium (.ci/run does) or set %s", ChromiumEnv)
	}
	t.Skipf("no Chromium on PATH (apt-get install chromium, or set %s); CI fails here instead", ChromiumEnv)
	return ""
}

// freeSpace matches the free space a farm row shows.
var freeSpace = regexp.MustCompile(`\d (B|KiB|MiB|GiB|TiB|PiB)\b`)

// dashJob is the job of the browser test: pbx1 pushes it to pbx2. The
// selectors below name it too (#job-asterisk).
const dashJob = "asterisk"

// meshJob is the browser test's mesh job: pbx1 and pbx2 are its members
// (#job-pool).
const meshJob = "pool"

// dashNode is one agent of the browser test, run in this process by
// runAgent, the code `pbxsync run` runs.
type dashNode struct {
	name, dir, tree, pool, data, listen, http string
	id                                        *identity.Identity
	log                                       astLogBuffer
	cancel                                    context.CancelFunc
	done                                      chan error
}

func newDashNode(t *testing.T, base, name string) *dashNode {
	t.Helper()
	n := &dashNode{name: name, dir: filepath.Join(base, name)}
	n.tree, n.pool, n.data = filepath.Join(n.dir, "tree"), filepath.Join(n.dir, "pool"), filepath.Join(n.dir, "data")
	for _, d := range []string{n.tree, n.pool} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	id, err := identity.LoadOrCreate(n.data)
	if err != nil {
		t.Fatal(err)
	}
	n.id = id
	udp, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	n.listen = udp.LocalAddr().String()
	udp.Close()
	tcp, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	n.http = tcp.Addr().String()
	tcp.Close()
	return n
}

func (n *dashNode) start(t *testing.T, peer *dashNode, jobExtra string) {
	t.Helper()
	// a simulated Asterisk (AMI) per node, so that the farm shows Asterisk
	// state and version; its broken-file marker is one no file here has,
	// so a rejection comes from the job's check
	const secret = "dashboard-test-ami-secret"
	sim, err := amisim.Start(amisim.Config{Secret: secret, SystemName: n.name, AsteriskVersion: "20.11.1", ConfigDir: n.tree,
		LogPath: filepath.Join(n.dir, "asterisk.log"), BrokenMarker: "never-in-this-test"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sim.Close(context.Background()) })
	secretFile := filepath.Join(n.dir, "ami.secret")
	if err := os.WriteFile(secretFile, []byte(secret+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	ast := fmt.Sprintf("\n[asterisk]\nami = %q\nusername = \"admin\"\nsecret_file = %q\nlog = %q\n", sim.Addr(), secretFile, filepath.Join(n.dir, "asterisk.log"))
	text := fmt.Sprintf("[node]\nname = %q\nlisten = %q\ndata_dir = %q\nhttp = %q\n\n[[peer]]\nname = %q\naddress = %q\nid = %q\n\n[[job]]\nname = %q\npath = %q\nsource = \"pbx1\"\ntargets = [\"pbx2\"]\n%s",
		n.name, n.listen, n.data, n.http, peer.name, peer.listen, peer.id.ID.String(), dashJob, n.tree, jobExtra) +
		fmt.Sprintf("\n[[job]]\nname = %q\npath = %q\nmode = \"mesh\"\ntargets = [\"pbx1\", \"pbx2\"]\n", meshJob, n.pool) + ast
	cfg, err := config.Parse(filepath.Join(n.dir, "pbxsync.toml"), []byte(text))
	if err != nil {
		t.Fatalf("%v\n%s", err, text)
	}
	ctx, cancel := context.WithCancel(context.Background())
	n.cancel, n.done = cancel, make(chan error, 1)
	go func() { n.done <- runAgent(ctx, cfg, newLogger(&n.log, "debug", false), nil, nil) }()
}

func (n *dashNode) stop(t *testing.T) {
	n.cancel()
	select {
	case err := <-n.done:
		if err != nil {
			t.Errorf("%s: runAgent: %v", n.name, err)
		}
	case <-time.After(testwait.Limit()):
		t.Errorf("%s: runAgent did not return", n.name)
	}
}

func (n *dashNode) read(t *testing.T) string {
	b, _ := os.ReadFile(filepath.Join(n.tree, "extensions.conf"))
	return string(b)
}

// poolFile is the path of name in n's mesh tree.
func (n *dashNode) poolFile(name string) string { return filepath.Join(n.pool, name) }

func (n *dashNode) write(t *testing.T, content string) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(n.tree, "extensions.conf"), []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

// getJSON reads one /api/v1 endpoint of n.
func (n *dashNode) getJSON(path string, v any) error {
	c := http.Client{Timeout: 10 * time.Second}
	resp, err := c.Get("http://" + n.http + path)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		return fmt.Errorf("%s: %d %s", path, resp.StatusCode, b)
	}
	return json.Unmarshal(b, v)
}

// waitFor polls cond until it returns nil; the bound only ends a hang.
func waitFor(t *testing.T, what string, cond func() error) {
	t.Helper()
	var err error
	for deadline := time.Now().Add(testwait.Limit()); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if err = cond(); err == nil {
			return
		}
	}
	t.Fatalf("%s: %v", what, err)
}

// TestDashboardInBrowser: two real agents (runAgent, real QUIC on
// 127.0.0.1) sync a good change and a change the target's check rejects;
// headless Chromium, driven over the DevTools protocol, loads the source's
// dashboard: it shows the generations, the rejected one with its reason,
// read-only without the token (a rollback request without it is refused
// with 401) and, with the token entered, a rollback click that changes
// both trees. The diff view shows the rejected line. Both agents also run
// a mesh job; pbx2 edits a file while it is down and pbx1 edits it too:
// when pbx2 is back the page shows the conflict record live, read-only.
// Screenshots (desktop and phone width) are written to
// PBXSYNC_TEST_ARTIFACTS or $TMPDIR (testlog.Dir).
func TestDashboardInBrowser(t *testing.T) {
	t.Parallel()
	chrome := findChromium(t)
	base := t.TempDir()
	a, b := newDashNode(t, base, "pbx1"), newDashNode(t, base, "pbx2")
	const v1, v2, broken = "exten => 100,1,Answer()\n", "exten => 100,1,Answer()\nexten => 101,1,Hangup()\n", "exten => 100,1,Answer()\nBROKEN\n"
	a.write(t, v1)
	if err := os.WriteFile(a.poolFile("shared.conf"), []byte("v1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	const bCheck = "check = \"! grep -q BROKEN extensions.conf\"\n"
	a.start(t, b, "")
	b.start(t, a, bCheck)
	var token string
	defer func() {
		a.stop(t)
		b.stop(t)
		for _, n := range []*dashNode{a, b} {
			if token != "" && strings.Contains(n.log.String(), token) {
				t.Errorf("%s: the API token is in the log", n.name)
			}
			if t.Failed() {
				testlog.Dump(t, n.name, n.log.String())
			}
		}
	}()
	converge := func(what, want string) {
		t.Helper()
		waitFor(t, what, func() error {
			if got := b.read(t); got != want {
				return fmt.Errorf("b holds %q, want %q", got, want)
			}
			return nil
		})
	}
	converge("first version on b", v1)
	a.write(t, v2)
	converge("second version on b", v2)
	a.write(t, broken)
	var bad store.GenerationInfo
	waitFor(t, "b rejects the broken change and a records why", func() error {
		var gens []store.GenerationInfo
		if err := a.getJSON("/api/v1/jobs/"+dashJob+"/history", &gens); err != nil {
			return err
		}
		if len(gens) < 3 || gens[len(gens)-1].State != store.StateBad {
			return fmt.Errorf("history %+v", gens)
		}
		bad = gens[len(gens)-1]
		return nil
	})
	if got := b.read(t); got != v2 {
		t.Fatalf("b holds %q after rejecting the broken change, want v2", got)
	}
	var st syncer.Status
	if err := a.getJSON("/api/v1/status", &st); err != nil || len(st.Jobs) != 2 {
		t.Fatalf("status: %v %+v", err, st)
	}
	tok, _, err := httpapi.LoadOrCreateToken(a.data)
	if err != nil {
		t.Fatal(err)
	}
	token = tok

	opts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath(chrome), chromedp.NoSandbox,
		chromedp.Flag("disable-dev-shm-usage", true), chromedp.WindowSize(1280, 1000))
	actx, acancel := chromedp.NewExecAllocator(context.Background(), opts...)
	defer acancel()
	bctx, bcancel := chromedp.NewContext(actx, chromedp.WithLogf(t.Logf))
	defer bcancel()
	ctx, cancel := context.WithTimeout(bctx, 2*testwait.Limit())
	defer cancel()
	do := func(what string, steps ...chromedp.Action[chromedp.Void]) {
		t.Helper()
		if err := chromedp.Do(ctx, steps...); err != nil {
			t.Fatalf("browser: %s: %v", what, err)
		}
	}
	// doAgain is do for steps that may run twice (picking radio buttons):
	// steps that met a node the page had just replaced (a live update
	// rebuilds a job's card when the job changes; a user's click may meet
	// it too) run again, a few times
	doAgain := func(what string, steps ...chromedp.Action[chromedp.Void]) {
		t.Helper()
		for attempt := 1; ; attempt++ {
			err := chromedp.Do(ctx, steps...)
			if err == nil {
				return
			}
			if attempt == 5 || !strings.Contains(err.Error(), "Could not find node with given id") {
				t.Fatalf("browser: %s: %v", what, err)
			}
			t.Logf("browser: %s: %v; again", what, err)
		}
	}
	text := func(sel string) string {
		t.Helper()
		s, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(sel)))
		if err != nil {
			t.Fatalf("browser: text of %s: %v", sel, err)
		}
		return s
	}
	eval := func(expr string) json.RawMessage {
		t.Helper()
		v, err := chromedp.Run(ctx, chromedp.Evaluate[[]byte](expr, chromedp.EvalAwaitPromise))
		if err != nil {
			t.Fatalf("browser: %s: %v", expr, err)
		}
		return v
	}
	url := "http://" + a.http + "/"
	badRow := fmt.Sprintf(`#job-asterisk tr[data-gen="%d"][data-state="bad"]`, bad.Number)
	do("open the dashboard", chromedp.Navigate(url), chromedp.WaitVisible(chromedp.CSS(badRow)))
	badText, page := text(badRow), text("body")
	if !strings.Contains(badText, "rejected") || !strings.Contains(badText, "pbx2") || !strings.Contains(badText, "check") {
		t.Errorf("the rejected generation's row does not say why: %q", badText)
	}
	for _, g := range []uint64{bad.Number - 2, bad.Number - 1} {
		if n := string(eval(fmt.Sprintf(`document.querySelectorAll('#job-asterisk tr[data-gen="%d"][data-state="good"]').length`, g))); n != "1" {
			t.Errorf("the page shows %s good rows for generation %d, want 1:\n%s", n, g, page)
		}
	}
	// The farm: both nodes with their Asterisk up and its version (this
	// node's own row comes with the first "node" event).
	for _, row := range []string{`#farm tr[data-peer="pbx2"]`, `#farm tr[data-peer=""]`} {
		waitFor(t, "the farm row "+row+" shows Asterisk", func() error {
			got := string(eval(`(document.querySelector('` + row + `') || {}).innerText || ''`))
			if !strings.Contains(got, "up") || !strings.Contains(got, "20.11.1") || !freeSpace.MatchString(got) {
				return fmt.Errorf("row %s", got)
			}
			return nil
		})
	}
	for _, want := range []string{"this node", "Last errors", "rejected generation", "read-only"} {
		if !strings.Contains(page, want) {
			t.Errorf("the page lacks %q:\n%s", want, page)
		}
	}

	// Read-only: the buttons are disabled and the API refuses a rollback
	// sent from the page without the token.
	rollbackBtn := fmt.Sprintf(`#job-asterisk button[data-action="rollback"][data-gen="%d"]`, bad.Number-2)
	do("find the rollback button", chromedp.WaitVisible(chromedp.CSS(rollbackBtn)))
	if d := string(eval(`document.querySelector('` + rollbackBtn + `').disabled`)); d != "true" {
		t.Errorf("the rollback button is enabled without a token (disabled = %s)", d)
	}
	status := string(eval(fmt.Sprintf(`fetch('api/v1/jobs/asterisk/rollback', {method: 'POST', headers: {'Content-Type': 'application/json', 'X-Pbxsync-Csrf': '1'}, body: '{"generation": %d}'}).then(r => r.status)`, bad.Number-2)))
	if status != "401" {
		t.Errorf("rollback from the page without the token: %s, want 401", status)
	}
	if got := a.read(t); got != broken {
		t.Fatalf("a refused rollback changed a's tree: %q", got)
	}

	// With the token: a rollback click (and its confirmation) restores
	// the first generation on a and, as a new generation, on b.
	do("enter the token and roll back", chromedp.SendKeys(chromedp.CSS("#token-input"), token),
		chromedp.Click(chromedp.CSS("#token-use")),
		chromedp.WaitVisible(chromedp.CSS("#mode.rw")),
		chromedp.WaitEnabled(chromedp.CSS(rollbackBtn)),
		chromedp.Click(chromedp.CSS(rollbackBtn)),
		chromedp.WaitVisible(chromedp.CSS(rollbackBtn+".confirm")),
		chromedp.Click(chromedp.CSS(rollbackBtn)),
		chromedp.WaitVisible(chromedp.CSS("#flash.ok")))
	if flash := text("#flash"); !strings.Contains(flash, "done") {
		t.Errorf("flash after the rollback: %q", flash)
	}
	if got := a.read(t); got != v1 {
		t.Fatalf("after the rollback a holds %q, want the first version", got)
	}
	converge("the rollback reaches b", v1)
	newRow := fmt.Sprintf(`#job-asterisk tr[data-gen="%d"][data-state="good"]`, bad.Number+1)
	do("the new generation shows up live", chromedp.WaitVisible(chromedp.CSS(newRow)))
	// The status follows over server-sent events: b holds the new
	// generation and the job is good again, without a reload.
	waitFor(t, "the page shows pbx2 good at the new generation", func() error {
		row := string(eval(`(document.querySelector('#job-asterisk tr[data-target="pbx2"]') || {}).innerText || ''`))
		head := string(eval(`(document.querySelector('#job-asterisk .card-head') || {}).innerText || ''`))
		if !strings.Contains(row, "good") || !strings.Contains(row, fmt.Sprint(bad.Number+1)) || !strings.Contains(head, fmt.Sprint(bad.Number+1)) {
			return fmt.Errorf("job head %s, target row %s", head, row)
		}
		return nil
	})

	// The mesh job's conflicts: pbx2 edits shared.conf while it is down,
	// after pbx1 did (later mtime: pbx2's edit wins under "newest"); when
	// it is back, pbx1 records the conflict and the page shows it live.
	waitFor(t, "the mesh job's file on pbx2", func() error {
		b, err := os.ReadFile(b.poolFile("shared.conf"))
		if string(b) != "v1\n" {
			return fmt.Errorf("pbx2 holds %q: %v", b, err)
		}
		return nil
	})
	if n := string(eval(`document.querySelectorAll('#job-pool tr[data-conflict]').length`)); n != "0" {
		t.Errorf("the mesh job shows %s conflicts before any", n)
	}
	poolGens := func() int {
		var gens []store.GenerationInfo
		if err := a.getJSON("/api/v1/jobs/"+meshJob+"/history", &gens); err != nil {
			t.Fatalf("pbx1's history of %s: %v", meshJob, err)
		}
		return len(gens)
	}
	b.stop(t)
	before := poolGens()
	now := time.Now()
	for _, e := range []struct {
		n       *dashNode
		content string
		mtime   time.Time
	}{{a, "edit made on pbx1\n", now.Add(-time.Minute)}, {b, "edit made on pbx2 while it was down\n", now}} {
		p := e.n.poolFile("shared.conf")
		if err := os.WriteFile(p, []byte(e.content), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Chtimes(p, e.mtime, e.mtime); err != nil {
			t.Fatal(err)
		}
	}
	// pbx1 records its edit before pbx2 comes back: pbx2's version then
	// meets it on pbx1 as well (had pbx2's resolution of the two come
	// first, it would supersede pbx1's edit there without a conflict on
	// pbx1, and only pbx2 would record one)
	waitFor(t, "pbx1 records its own edit", func() error {
		if n := poolGens(); n <= before {
			return fmt.Errorf("pbx1 holds %d generations of %s, as before its edit", n, meshJob)
		}
		return nil
	})
	b.start(t, a, bCheck)
	var conflict history.Conflict
	waitFor(t, "pbx1 records the conflict", func() error {
		var cs []history.Conflict
		if err := a.getJSON("/api/v1/jobs/"+meshJob+"/conflicts", &cs); err != nil {
			return err
		}
		if len(cs) != 1 {
			return fmt.Errorf("conflicts %+v", cs)
		}
		conflict = cs[0]
		return nil
	})
	if c := conflict; c.Path != "shared.conf" || c.Winner.Node != "pbx2" || c.Loser.Node != "pbx1" || c.Loser.Hash == "" {
		t.Errorf("conflict record %+v, want shared.conf won by pbx2 over pbx1", c)
	}
	conflictRow := fmt.Sprintf(`#job-pool tr[data-conflict=%q]`, conflict.ID)
	do("the conflict shows up live", chromedp.WaitVisible(chromedp.CSS(conflictRow)))
	if row := text(conflictRow); !strings.Contains(row, "shared.conf") || !strings.Contains(row, "pbx2") || !strings.Contains(row, "pbx1") || !strings.Contains(row, conflict.ID) {
		t.Errorf("the conflict's row: %q", row)
	}
	if sum := text(`#job-pool details[data-conflicts] summary`); sum != "Conflicts (1)" {
		t.Errorf("the conflicts' summary: %q", sum)
	}
	if got, _ := os.ReadFile(a.poolFile("shared.conf")); string(got) != "edit made on pbx2 while it was down\n" {
		t.Errorf("pbx1 holds %q after the conflict, want pbx2's edit", got)
	}

	// The diff view: the rejected generation against the one before it.
	doAgain("diff two generations",
		chromedp.Click(chromedp.CSS(fmt.Sprintf(`#job-asterisk tr[data-gen="%d"] input[name="diff-from-asterisk"]`, bad.Number-1))),
		chromedp.Click(chromedp.CSS(fmt.Sprintf(`#job-asterisk tr[data-gen="%d"] input[name="diff-to-asterisk"]`, bad.Number))),
		chromedp.Click(chromedp.CSS(`#job-asterisk button[data-action="diff"]`)),
		chromedp.WaitVisible(chromedp.CSS(`#job-asterisk .diff pre .add`)))
	if diff := text(`#job-asterisk .diff`); !strings.Contains(diff, "+BROKEN") || !strings.Contains(diff, "-exten => 101,1,Hangup()") {
		t.Errorf("diff view of %d → %d: %q", bad.Number-1, bad.Number, diff)
	}

	dir, err := testlog.Dir("pbxsync-dashboard-")
	if err != nil {
		t.Fatal(err)
	}
	desktop, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatalf("browser: screenshot: %v", err)
	}
	// reading scrollWidth lays the page out at the new width first
	do("phone width", chromedp.EmulateViewport(390, 844, chromedp.EmulateScale(2), chromedp.EmulateMobile))
	if o := string(eval(`document.documentElement.scrollWidth > window.innerWidth + 1`)); o != "false" {
		t.Error("at phone width (390 px) the page scrolls sideways; wide tables should scroll inside their box")
	}
	phone, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatalf("browser: screenshot: %v", err)
	}
	for name, png := range map[string][]byte{"dashboard.png": desktop, "dashboard-phone.png": phone} {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, png, 0o644); err != nil {
			t.Fatal(err)
		}
		t.Logf("screenshot: %s", p)
	}

	// The API of the target, over plain HTTP with its own token: a plain
	// rollback is refused (409, naming the source), a rollback with hold
	// holds it, resume lets it catch up again; sync now answers 200.
	btok, _, err := httpapi.LoadOrCreateToken(b.data)
	if err != nil {
		t.Fatal(err)
	}
	post := func(n *dashNode, tok, action, body string) (int, string) {
		t.Helper()
		req, _ := http.NewRequest("POST", "http://"+n.http+"/api/v1/jobs/"+dashJob+"/"+action, strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+tok)
		req.Header.Set(httpapi.CSRFHeader, "1")
		req.Header.Set("Content-Type", "application/json")
		resp, err := (&http.Client{Timeout: 2 * testwait.Limit()}).Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		out, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(out)
	}
	if code, body := post(b, btok, "rollback", `{"generation": 0}`); code != http.StatusConflict || !strings.Contains(body, "pbx1") {
		t.Errorf("plain rollback on the target: %d %s, want 409 naming the source", code, body)
	}
	if code, body := post(b, token, "rollback", `{"generation": 0, "hold": true}`); code != http.StatusUnauthorized {
		t.Errorf("pbx1's token on pbx2: %d %s, want 401", code, body)
	}
	if code, body := post(b, btok, "rollback", `{"generation": 0, "hold": true}`); code != http.StatusOK {
		t.Fatalf("rollback with hold on the target: %d %s", code, body)
	}
	held := func() string {
		var bst syncer.Status
		if err := b.getJSON("/api/v1/status", &bst); err != nil || len(bst.Jobs) != 2 {
			t.Fatalf("status of pbx2: %v %+v", err, bst)
		}
		for _, j := range bst.Jobs {
			if j.Name == dashJob {
				return j.Held
			}
		}
		t.Fatalf("status of pbx2 has no job %s: %+v", dashJob, bst)
		return ""
	}
	if h := held(); !strings.Contains(h, "held by operator") {
		t.Errorf("after rollback with hold pbx2's job says held %q", h)
	}
	if got := b.read(t); got == v1 {
		t.Errorf("rollback with hold left pbx2 at the newest content")
	}
	if code, body := post(b, btok, "resume", ""); code != http.StatusOK {
		t.Fatalf("resume on the target: %d %s", code, body)
	}
	converge("pbx2 catches up after resume", v1)
	if h := held(); h != "" {
		t.Errorf("after resume pbx2's job says held %q", h)
	}
	if code, body := post(a, token, "sync", ""); code != http.StatusOK {
		t.Errorf("sync now on the source: %d %s", code, body)
	}
}
